using System.Text.Json;
using Sputnik.Inference.Json;
using Xunit;

namespace Sputnik.Tests.Inference;

public class JsonSchemaCompilerTests
{
    private static SchemaNode Compile(string schema)
    {
        using var doc = JsonDocument.Parse(schema);
        return JsonSchemaCompiler.Compile(doc.RootElement);
    }

    private static (bool Prefix, bool Complete) Run(string schema, string text) => JsonRecognizerTests.Run(Compile(schema), text);

    private const string Person = """
        {"type":"object","properties":{"name":{"type":"string","maxLength":5},"age":{"type":"integer"},
         "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},
         "required":["name","age"],"additionalProperties":false}
        """;

    [Theory]
    [InlineData("""{"name":"Ann","age":3}""")]
    [InlineData("""{"age":-3,"name":"","tags":["a","b"]}""")]
    [InlineData("""{ "name" : "Bob" , "age" : 40 , "tags" : [ ] }""")]
    public void Objects_matching_the_schema_are_complete(string json) => Assert.Equal((true, true), Run(Person, json));

    [Theory]
    [InlineData("""{"name":"Ann"}""")] // age missing: '}' refused
    [InlineData("""{"nick""")] // undeclared property
    [InlineData("""{"name":"Ann","name""")] // duplicate
    [InlineData("""{"name":"Annabel""")] // longer than maxLength
    [InlineData("""{"age":3.5""")] // integer
    [InlineData("""{"age":"3""")] // wrong type
    [InlineData("""{"tags":["c""")] // not in the enum
    [InlineData("""{"tags":["a","b",""")] // maxItems
    [InlineData("""[""")]
    public void Text_the_schema_forbids_is_rejected(string json) => Assert.False(Run(Person, json).Prefix);

    [Fact]
    public void A_trailing_comma_is_refused_once_every_property_is_present()
    {
        Assert.True(Run(Person, """{"name":"A","age":1,"tags":[]""").Prefix);
        Assert.False(Run(Person, """{"name":"A","age":1,"tags":[],""").Prefix);
    }

    [Fact]
    public void Additional_properties_are_allowed_by_default()
    {
        const string s = """{"type":"object","properties":{"a":{"type":"boolean"}}}""";
        Assert.Equal((true, true), Run(s, """{"b":[1,{"x":null}],"a":true}"""));
        Assert.False(Run(s, """{"a":1""").Prefix); // a declared property keeps its schema
        Assert.True(Run(s, """{"a":true,"a""").Prefix); // may still become "ab"
        Assert.False(Run(s, """{"a":true,"a":""").Prefix); // but "a" appears once
    }

    [Fact]
    public void Enum_const_and_type_lists()
    {
        Assert.Equal((true, true), Run("""{"enum":["red","green",3,null]}""", "\"green\""));
        Assert.Equal((true, true), Run("""{"enum":["red","green",3,null]}""", "3"));
        Assert.False(Run("""{"enum":["red","green"]}""", "\"blue").Prefix);
        Assert.Equal((true, true), Run("""{"const":{"k":[1,2]}}""", """{"k":[1,2]}"""));
        Assert.Equal((true, true), Run("""{"type":["string","null"]}""", "null"));
        Assert.False(Run("""{"type":["string","null"]}""", "1").Prefix);
        // A number enum where one value is a prefix of another: "1" is complete but may still grow to "10".
        var (prefix, complete) = Run("""{"enum":[1,10]}""", "1");
        Assert.True(prefix && complete);
        Assert.False(Run("""{"enum":[1,10]}""", "11").Prefix);
    }

    [Fact]
    public void AnyOf_picks_the_alternative_by_its_first_byte()
    {
        const string s = """{"anyOf":[{"type":"object","properties":{"x":{"type":"number"}},"required":["x"],"additionalProperties":false},{"type":"string","minLength":2},{"type":"null"}]}""";
        Assert.Equal((true, true), Run(s, """{"x":1.5}"""));
        Assert.Equal((true, true), Run(s, "\"ab\""));
        Assert.False(Run(s, "\"a\"").Prefix); // minLength
        Assert.False(Run(s, "[").Prefix);
    }

    [Fact]
    public void Refs_into_defs_may_recurse()
    {
        const string s = """
            {"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
             "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],"additionalProperties":false}}}
            """;
        Assert.Equal((true, true), Run(s, """{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}"""));
        Assert.False(Run(s, """{"v":1,"kids":[{"w""").Prefix);
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^a"}""", "pattern")]
    [InlineData("""{"type":"number","minimum":0}""", "minimum")]
    [InlineData("""{"type":"string","format":"date-time"}""", "format")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"array","prefixItems":[]}}}""", "prefixItems")]
    [InlineData("""{"allOf":[]}""", "allOf")]
    [InlineData("""{"type":"date"}""", "type")]
    [InlineData("""{"anyOf":[{"type":"string"},{"enum":["a"]}]}""", "anyOf")]
    [InlineData("""{"anyOf":[{"type":"integer"},{"type":"number"}]}""", "anyOf")]
    [InlineData("""{"$ref":"https://example.com/s.json"}""", "$ref")]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "$ref")]
    [InlineData("""{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/a"}}}""", "$ref")]
    [InlineData("""{"type":"object","properties":{"a":{}},"required":["b"]}""", "required")]
    [InlineData("""{"enum":[]}""", "enum")]
    [InlineData("""{"type":"string","minLength":3,"maxLength":2}""", "minLength")]
    public void Unsupported_or_broken_schemas_name_the_keyword(string schema, string keyword)
    {
        var ex = Assert.Throws<JsonSchemaException>(() => Compile(schema));
        Assert.Equal(keyword, ex.Keyword);
        Assert.Contains(keyword, ex.Message);
    }

    [Fact]
    public void Annotations_are_ignored()
    {
        var (prefix, complete) = Run("""{"title":"T","description":"d","$schema":"x","type":"boolean","default":true}""", "false");
        Assert.True(prefix && complete);
    }
}
