using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Gguf;
using Sputnik.Templates;
using Sputnik.Tokenizers;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik template (--file T.jinja | -m MODEL) --messages M.json …` — prints the rendered prompt exactly.</summary>
internal static class TemplateCommand
{
    public static Command Create()
    {
        var file = new Option<string?>("--file", "-f") { Description = "Jinja chat template file" };
        var model = new Option<string?>("--model", "-m") { Description = "Take the template (and BOS/EOS) from this GGUF model" };
        var messages = new Option<string>("--messages") { Description = "JSON file: an array of messages (or {\"messages\": [...]})", Required = true };
        var addGen = new Option<bool>("--add-generation-prompt") { Description = "End with the assistant turn opener" };
        var bos = new Option<string?>("--bos") { Description = "bos_token text" };
        var eos = new Option<string?>("--eos") { Description = "eos_token text" };
        var tools = new Option<string?>("--tools") { Description = "JSON file with a tools array" };
        var cmd = new Command("template", "Render a chat template over messages, exactly as transformers' apply_chat_template does")
        {
            file, model, messages, addGen, bos, eos, tools,
        };
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(file) == null) == (r.GetValue(model) == null)) r.AddError("give exactly one of --file or -m");
        });
        cmd.SetAction(r =>
        {
            string source;
            string? bosText = r.GetValue(bos), eosText = r.GetValue(eos);
            if (r.GetValue(file) is { } path)
            {
                source = File.ReadAllText(path);
            }
            else
            {
                using var gguf = GgufFile.Open(CliOptions.ResolveModel(r.GetValue(model)));
                source = gguf.GetStringOrNull("tokenizer.chat_template")
                    ?? throw new ArgumentException($"{gguf.Path} has no chat template (tokenizer.chat_template)");
                var tok = Tokenizer.Create(TokenizerData.FromGguf(gguf));
                bosText ??= tok.BosId >= 0 ? tok.TokenPiece(tok.BosId) : null;
                eosText ??= tok.EosId >= 0 ? tok.TokenPiece(tok.EosId) : null;
            }
            var msgs = ReadJson(r.GetValue(messages)!) switch
            {
                JsonArray a => a,
                JsonObject o when o["messages"] is JsonArray a => a,
                _ => throw new ArgumentException("--messages must hold a JSON array of messages or an object with \"messages\""),
            };
            JsonArray? toolList = null;
            if (r.GetValue(tools) is { } toolsPath)
                toolList = ReadJson(toolsPath) as JsonArray ?? throw new ArgumentException("--tools must hold a JSON array");
            string text = ChatTemplate.Apply(source, msgs, r.GetValue(addGen), bosText, eosText, toolList);
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(System.Text.Encoding.UTF8.GetBytes(text));
            return 0;
        });
        return cmd;
    }

    private static JsonNode? ReadJson(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{path}: invalid JSON ({e.Message})");
        }
    }
}
