using System.CommandLine;
using Sputnik.Gguf;
using Sputnik.Tokenizers;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik tokenize -m MODEL (--text T | --file F) [--no-bos] [--special] [--pieces]`.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CliOptions.Model();
        var text = new Option<string?>("--text") { Description = "Text to tokenize" };
        var file = new Option<string?>("--file", "-f") { Description = "UTF-8 file to tokenize" };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not add BOS even if the model asks for it" };
        var special = new Option<bool>("--special") { Description = "Parse special/control tokens such as <|im_start|>" };
        var pieces = new Option<bool>("--pieces") { Description = "Also print each token's piece" };
        var cmd = new Command("tokenize", "Print the token ids of a text") { model, text, file, noBos, special, pieces };
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(text) == null) == (r.GetValue(file) == null)) r.AddError("give exactly one of --text or --file");
        });
        cmd.SetAction(r =>
        {
            string input = r.GetValue(text) ?? File.ReadAllText(r.GetValue(file)!);
            using var gguf = GgufFile.Open(CliOptions.ResolveModel(r.GetValue(model)));
            var tokenizer = Tokenizer.Create(TokenizerData.FromGguf(gguf));
            int[] ids = tokenizer.Encode(input, addBos: !r.GetValue(noBos), parseSpecial: r.GetValue(special));
            Console.WriteLine(string.Join(' ', ids));
            if (r.GetValue(pieces))
                foreach (int id in ids)
                    Console.WriteLine($"{id,8} {System.Text.Json.JsonSerializer.Serialize(tokenizer.TokenPiece(id), JsonOutput.Options)}");
            return 0;
        });
        return cmd;
    }
}
