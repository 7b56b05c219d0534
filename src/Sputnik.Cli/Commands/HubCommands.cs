using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Sputnik.Gguf;
using Sputnik.Hub;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik pull REF`, `sputnik list [--json]`, `sputnik rm REF`, `sputnik show REF [--json]`: models from a Hugging
/// Face-style hub, kept in the shared Hugging Face cache (see docs/models.md, "Models from the hub").
/// </summary>
internal static class HubCommands
{
    private static Argument<string> Reference() => new("REF") { Description = "owner/repo[:QUANT], hf.co/owner/repo, owner/repo/file.gguf, each with an optional @revision" };

    public static IEnumerable<Command> Create() => [Pull(), List(), Remove(), Show()];

    private static Command Pull()
    {
        var reference = Reference();
        var cmd = new Command("pull", "Download a model from the hub into the Hugging Face cache (resumable, SHA-256 checked); prints its path") { reference };
        cmd.SetAction(r =>
        {
            var resolved = HubCli.Resolve(ModelReference.Parse(r.GetValue(reference)!), refresh: true);
            long bytes = resolved.LocalPaths.Sum(p => HubCache.Target(p).Length);
            string files = resolved.Files.Count == 1 ? resolved.Files[0] : $"{resolved.Files[0]} and {resolved.Files.Count - 1} more shard(s)";
            HubCli.Say(resolved.Downloaded > 0
                ? $"pulled {resolved.Reference.Repo}: {files} ({ModelHub.Size(bytes)}, commit {resolved.Commit[..12]})"
                : $"{resolved.Reference.Repo}: {files} is up to date ({ModelHub.Size(bytes)}, commit {resolved.Commit[..12]})");
            Console.WriteLine(resolved.Path);
            return 0;
        });
        return cmd;
    }

    private static Command List()
    {
        var json = new Option<bool>("--json") { Description = "Print a JSON array" };
        var cmd = new Command("list", "List the GGUF models in the Hugging Face cache") { json };
        cmd.SetAction(r =>
        {
            var hub = HubCli.CreateHub();
            var models = hub.List();
            if (r.GetValue(json))
            {
                var array = new JsonArray();
                foreach (var m in models)
                {
                    array.Add(new JsonObject
                    {
                        ["reference"] = m.Reference,
                        ["repo"] = m.Repo,
                        ["commit"] = m.Commit,
                        ["file"] = m.File,
                        ["files"] = m.LocalPaths.Count,
                        ["path"] = m.LocalPaths[0],
                        ["size"] = m.Size,
                        ["architecture"] = m.Architecture,
                        ["parameters"] = m.Parameters,
                        ["quant"] = m.Quant,
                        ["last_used"] = m.LastUsedUtc.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
                    });
                }
                Console.WriteLine(array.ToJsonString(JsonOutput.Indented));
                return 0;
            }
            if (models.Count == 0)
            {
                HubCli.Say($"no models in the cache ({hub.Cache.Root}); `sputnik pull owner/repo:QUANT` adds one");
                return 0;
            }
            int width = Math.Max(9, models.Max(m => m.Reference.Length));
            Console.WriteLine($"{"REFERENCE".PadRight(width)}  {"SIZE",10}  {"ARCH",-10} {"PARAMS",8}  {"QUANT",-8} {"LAST USED",-16}  FILE");
            foreach (var m in models)
            {
                string file = m.LocalPaths.Count > 1 ? $"{m.File} (+{m.LocalPaths.Count - 1} shards)" : m.File;
                Console.WriteLine(DisplayText.Safe(
                    $"{m.Reference.PadRight(width)}  {ModelHub.Size(m.Size),10}  {m.Architecture ?? "?",-10} {Count(m.Parameters),8}  {m.Quant,-8} " +
                    $"{m.LastUsedUtc.ToLocalTime().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),-16}  {file}", 1000));
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>1.78B, 494M, 0.9M: parameter counts as model cards write them.</summary>
    private static string Count(long? n) => n switch
    {
        null => "?",
        >= 1_000_000_000 => $"{n / 1e9:0.##}B",
        >= 1_000_000 => $"{n / 1e6:0.#}M",
        _ => $"{n / 1e3:0.#}K",
    };

    private static Command Remove()
    {
        var reference = Reference();
        var cmd = new Command("rm", "Delete a cached model (owner/repo alone deletes every file of the repository)") { reference };
        cmd.SetAction(r =>
        {
            foreach (string removed in HubCli.CreateHub().Remove(ModelReference.Parse(r.GetValue(reference)!)))
                Console.WriteLine($"removed {removed}");
            return 0;
        });
        return cmd;
    }

    private static Command Show()
    {
        var reference = Reference();
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("show", "Show a hub model's info (as `sputnik info`) and where it came from; pulls it if needed") { reference, json };
        cmd.SetAction(r =>
        {
            var resolved = HubCli.Resolve(ModelReference.Parse(r.GetValue(reference)!), refresh: false);
            var origin = new JsonObject
            {
                ["reference"] = resolved.Reference.ToString(),
                ["repo"] = resolved.Reference.Repo,
                ["revision"] = resolved.Reference.RevisionOrDefault,
                ["commit"] = resolved.Commit,
                ["url"] = $"{resolved.Endpoint}/{resolved.Reference.Repo}",
                ["files"] = new JsonArray(resolved.Files.Select(f => (JsonNode)f).ToArray()),
                ["blobs"] = new JsonArray(resolved.LocalPaths.Select(p => (JsonNode)HubCache.Target(p).FullName).ToArray()),
            };
            using var file = GgufFile.Open(resolved.Path);
            var info = InfoCommand.Describe(file);
            if (r.GetValue(json))
            {
                info["origin"] = origin;
            }
            else
            {
                Console.WriteLine($"{"from",-22} {DisplayText.Safe($"{resolved.Endpoint}/{resolved.Reference.Repo} @ {resolved.Reference.RevisionOrDefault} (commit {resolved.Commit})")}");
                foreach (var (f, p) in resolved.Files.Zip(resolved.LocalPaths))
                    Console.WriteLine($"{"file",-22} {DisplayText.Safe($"{f} -> {HubCache.Target(p).FullName}")}");
            }
            InfoCommand.Print(info, r.GetValue(json));
            return 0;
        });
        return cmd;
    }
}
