using System.CommandLine;
using System.Text.Json;
using Sputnik.Cli;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace Sputnik.Tests.Deploy;

/// <summary>
/// The Kubernetes manifests in deploy/kubernetes and the Dockerfile, checked without a cluster or a Docker daemon:
/// every document parses and has the kind's apiVersion and required fields, selectors match the pod labels, the
/// probes hit /health on the port the server is told to listen on, the InferencePool and HTTPRoute follow the
/// Gateway API Inference Extension's v1 schema, and every `sputnik serve` argument is one the CLI accepts.
/// </summary>
public sealed class DeploymentManifestTests
{
    private static readonly string Dir = Path.Combine(Fixtures.RepoRoot, "deploy", "kubernetes");

    /// <summary>The apiVersion each kind is written in (the Inference Extension's InferencePool is v1 since its 1.0).</summary>
    private static readonly Dictionary<string, string> ApiVersions = new()
    {
        ["Deployment"] = "apps/v1",
        ["Service"] = "v1",
        ["PersistentVolumeClaim"] = "v1",
        ["Gateway"] = "gateway.networking.k8s.io/v1",
        ["HTTPRoute"] = "gateway.networking.k8s.io/v1",
        ["InferencePool"] = "inference.networking.k8s.io/v1",
    };

    private static List<(string File, YamlMappingNode Doc)> Documents()
    {
        var docs = new List<(string, YamlMappingNode)>();
        foreach (string file in Directory.GetFiles(Dir, "*.yaml").Order(StringComparer.Ordinal))
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(file)) stream.Load(reader);
            foreach (var d in stream.Documents)
                docs.Add((Path.GetFileName(file), Assert.IsType<YamlMappingNode>(d.RootNode)));
        }
        return docs;
    }

    private static YamlNode? At(YamlNode node, params string[] path)
    {
        foreach (string key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next)) return null;
            node = next;
        }
        return node;
    }

    private static string Str(YamlNode node, params string[] path) =>
        (At(node, path) as YamlScalarNode)?.Value ?? throw new Xunit.Sdk.XunitException($"missing {string.Join('.', path)}");

    private static YamlMappingNode Map(YamlNode node, params string[] path) =>
        At(node, path) as YamlMappingNode ?? throw new Xunit.Sdk.XunitException($"missing mapping {string.Join('.', path)}");

    private static List<YamlNode> Seq(YamlNode node, params string[] path) =>
        (At(node, path) as YamlSequenceNode)?.Children.ToList() ?? throw new Xunit.Sdk.XunitException($"missing list {string.Join('.', path)}");

    private static Dictionary<string, string> Labels(YamlMappingNode map) =>
        map.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => ((YamlScalarNode)kv.Value).Value!);

    private static YamlMappingNode One(List<(string File, YamlMappingNode Doc)> docs, string kind) =>
        Assert.Single(docs, d => Str(d.Doc, "kind") == kind).Doc;

    private static void AssertSubset(Dictionary<string, string> selector, Dictionary<string, string> labels, string what)
    {
        Assert.NotEmpty(selector);
        foreach (var (k, v) in selector)
            Assert.True(labels.TryGetValue(k, out var have) && have == v, $"{what}: selector {k}={v} matches no pod label");
    }

    /// <summary>Parses `sputnik ARGS` with the real command tree: unknown flags or bad values are errors.</summary>
    private static void AssertCliAccepts(IReadOnlyList<string> args)
    {
        var result = SputnikCli.CreateRoot().Parse(args.ToArray());
        Assert.True(result.Errors.Count == 0, $"sputnik {string.Join(' ', args)}: {string.Join("; ", result.Errors.Select(e => e.Message))}");
    }

    private static string Flag(IReadOnlyList<string> args, string flag)
    {
        int i = args.ToList().IndexOf(flag);
        Assert.True(i >= 0 && i + 1 < args.Count, $"{flag} is not given");
        return args[i + 1];
    }

    [Fact]
    public void EveryDocumentHasItsKindsApiVersionAndAName()
    {
        var docs = Documents();
        Assert.Equal(ApiVersions.Keys.Order(StringComparer.Ordinal), docs.Select(d => Str(d.Doc, "kind")).Distinct().Order(StringComparer.Ordinal));
        foreach (var (file, doc) in docs)
        {
            string kind = Str(doc, "kind");
            Assert.True(ApiVersions[kind] == Str(doc, "apiVersion"), $"{file}: {kind} has apiVersion {Str(doc, "apiVersion")}, not {ApiVersions[kind]}");
            Assert.Matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", Str(doc, "metadata", "name"));
            Assert.NotNull(At(doc, "spec"));
        }
    }

    [Fact]
    public void TheDeploymentProbesHealthOnTheServersPortAndRunsAsTheImagesUser()
    {
        var docs = Documents();
        var deployment = One(docs, "Deployment");
        var podLabels = Labels(Map(deployment, "spec", "template", "metadata", "labels"));
        AssertSubset(Labels(Map(deployment, "spec", "selector", "matchLabels")), podLabels, "Deployment");
        Assert.True(int.Parse(Str(deployment, "spec", "replicas")) >= 1);

        var container = Assert.IsType<YamlMappingNode>(Assert.Single(Seq(deployment, "spec", "template", "spec", "containers")));
        Assert.False(string.IsNullOrEmpty(Str(container, "image")));
        var args = Seq(container, "args").Select(a => ((YamlScalarNode)a).Value!).ToList();
        Assert.Equal("serve", args[0]);
        AssertCliAccepts(args);
        Assert.Equal("0.0.0.0", Flag(args, "--host")); // the default, 127.0.0.1, is unreachable from the kubelet
        int port = int.Parse(Flag(args, "--port"));
        Assert.Equal(new Sputnik.Server.ServerOptions().Port, port);

        var ports = Seq(container, "ports").Cast<YamlMappingNode>().ToDictionary(p => Str(p, "name"), p => int.Parse(Str(p, "containerPort")));
        Assert.Equal(port, ports["http"]);
        foreach (string probe in new[] { "readinessProbe", "livenessProbe" })
        {
            Assert.Equal("/health", Str(container, probe, "httpGet", "path"));
            string probePort = Str(container, probe, "httpGet", "port");
            Assert.Equal(port, int.TryParse(probePort, out int n) ? n : ports[probePort]);
        }

        var security = Map(deployment, "spec", "template", "spec", "securityContext");
        Assert.Equal("true", Str(security, "runAsNonRoot"));
        Assert.Equal(DockerfileUid.ToString(System.Globalization.CultureInfo.InvariantCulture), Str(security, "runAsUser"));

        // The --cache-dir is on a mounted volume that the pod declares.
        var mounts = Seq(container, "volumeMounts").Cast<YamlMappingNode>().ToList();
        var volumes = Seq(deployment, "spec", "template", "spec", "volumes").Cast<YamlMappingNode>().Select(v => Str(v, "name")).ToList();
        string cacheDir = Flag(args, "--cache-dir");
        var mount = Assert.Single(mounts, m => cacheDir.StartsWith(Str(m, "mountPath"), StringComparison.Ordinal));
        Assert.Contains(Str(mount, "name"), volumes);

        // The Service selects those pods and forwards to the named port.
        var service = One(docs, "Service");
        AssertSubset(Labels(Map(service, "spec", "selector")), podLabels, "Service");
        foreach (var p in Seq(service, "spec", "ports").Cast<YamlMappingNode>())
            Assert.True(ports.ContainsKey(Str(p, "targetPort")) || int.Parse(Str(p, "targetPort")) == port);

        // The optional shared cache volume must be mountable by every replica at once.
        var claim = One(docs, "PersistentVolumeClaim");
        Assert.Contains("ReadWriteMany", Seq(claim, "spec", "accessModes").Select(m => ((YamlScalarNode)m).Value));
        Assert.False(string.IsNullOrEmpty(Str(claim, "spec", "resources", "requests", "storage")));
    }

    [Fact]
    public void TheInferencePoolSelectsThePodsAndTheRouteSendsToIt()
    {
        var docs = Documents();
        var deployment = One(docs, "Deployment");
        var podLabels = Labels(Map(deployment, "spec", "template", "metadata", "labels"));
        var container = (YamlMappingNode)Seq(deployment, "spec", "template", "spec", "containers")[0];
        int port = int.Parse(Flag(Seq(container, "args").Select(a => ((YamlScalarNode)a).Value!).ToList(), "--port"));

        var pool = One(docs, "InferencePool");
        AssertSubset(Labels(Map(pool, "spec", "selector", "matchLabels")), podLabels, "InferencePool");
        var target = Assert.IsType<YamlMappingNode>(Assert.Single(Seq(pool, "spec", "targetPorts"))); // the schema allows exactly one
        Assert.Equal(port, int.Parse(Str(target, "number")));
        Assert.False(string.IsNullOrEmpty(Str(pool, "spec", "endpointPickerRef", "name")));
        int eppPort = int.Parse(Str(pool, "spec", "endpointPickerRef", "port", "number"));
        Assert.InRange(eppPort, 1, 65535);
        Assert.Contains(Str(pool, "spec", "endpointPickerRef", "failureMode"), new[] { "FailOpen", "FailClose" });
        Assert.Null(At(pool, "spec", "targetPortNumber")); // the v1alpha2 field, gone in v1

        var gateway = One(docs, "Gateway");
        Assert.False(string.IsNullOrEmpty(Str(gateway, "spec", "gatewayClassName")));
        Assert.NotEmpty(Seq(gateway, "spec", "listeners"));

        var route = One(docs, "HTTPRoute");
        var parent = Assert.IsType<YamlMappingNode>(Assert.Single(Seq(route, "spec", "parentRefs")));
        Assert.Equal(Str(gateway, "metadata", "name"), Str(parent, "name"));
        var rule = Assert.IsType<YamlMappingNode>(Assert.Single(Seq(route, "spec", "rules")));
        var backend = Assert.IsType<YamlMappingNode>(Assert.Single(Seq(rule, "backendRefs")));
        Assert.Equal("inference.networking.k8s.io", Str(backend, "group"));
        Assert.Equal("InferencePool", Str(backend, "kind"));
        Assert.Equal(Str(pool, "metadata", "name"), Str(backend, "name"));
        var match = (YamlMappingNode)Seq(rule, "matches")[0];
        Assert.Contains(Str(match, "path", "type"), new[] { "PathPrefix", "Exact" });
        Assert.StartsWith("/v1", Str(match, "path", "value"), StringComparison.Ordinal);
    }

    // --- Dockerfile ---

    /// <summary>The UID of the aspnet image's "app" user ($APP_UID).</summary>
    private const int DockerfileUid = 1654;

    private sealed record Instruction(string Name, string Args, int Stage);

    /// <summary>The Dockerfile's instructions (continuation lines joined, comments dropped), each with its stage number.</summary>
    private static List<Instruction> Dockerfile()
    {
        var list = new List<Instruction>();
        string pending = "";
        int stage = -1;
        foreach (string raw in File.ReadAllLines(Path.Combine(Fixtures.RepoRoot, "Dockerfile")))
        {
            string line = raw.Trim();
            if (line.StartsWith('#') || line.Length == 0 && pending.Length == 0) continue;
            if (line.EndsWith('\\'))
            {
                pending += line[..^1] + " ";
                continue;
            }
            line = (pending + line).Trim();
            pending = "";
            if (line.Length == 0) continue;
            int space = line.IndexOf(' ');
            string name = line[..space].ToUpperInvariant();
            if (name == "FROM") stage++;
            list.Add(new Instruction(name, line[(space + 1)..].Trim(), stage));
        }
        return list;
    }

    private static string[] ExecForm(Instruction i) =>
        JsonSerializer.Deserialize<string[]>(i.Args) ?? throw new Xunit.Sdk.XunitException($"{i.Name} is not in exec form");

    [Fact]
    public void TheDockerfileBuildsWithTheSdkAndRunsTheCliAsANonRootUser()
    {
        var all = Dockerfile();
        var froms = all.Where(i => i.Name == "FROM").ToList();
        Assert.True(froms.Count >= 2, "multi-stage: a build stage and a runtime stage");
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/sdk:10\.0 AS build$", froms[0].Args);
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/aspnet:10\.0 AS runtime$", froms[^1].Args);
        int last = froms.Count - 1;

        var build = all.Where(i => i.Stage == 0).ToList();
        var publish = Assert.Single(build, i => i.Name == "RUN" && i.Args.Contains("dotnet publish", StringComparison.Ordinal));
        Assert.Contains("src/Sputnik.Cli/Sputnik.Cli.csproj", publish.Args, StringComparison.Ordinal);
        Assert.Contains("-c Release", publish.Args, StringComparison.Ordinal);
        // The model is in the build context before the publish, so the CLI embeds it and `docker run` serves it.
        int model = build.FindIndex(i => i.Name == "COPY" && i.Args.Contains("models/sputnik-r1-tiny.gguf", StringComparison.Ordinal));
        Assert.True(model >= 0 && model < build.IndexOf(publish));
        foreach (var copy in build.Where(i => i.Name == "COPY"))
            foreach (string source in copy.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..^1])
                Assert.True(File.Exists(Path.Combine(Fixtures.RepoRoot, source)) || Directory.Exists(Path.Combine(Fixtures.RepoRoot, source)), $"COPY {source}: not in the repository");

        var runtime = all.Where(i => i.Stage == last).ToList();
        Assert.Contains(runtime, i => i.Name == "COPY" && i.Args.StartsWith("--from=build /app", StringComparison.Ordinal));
        Assert.DoesNotContain(runtime, i => i.Name == "RUN" && i.Args.Contains("dotnet build", StringComparison.Ordinal));
        var user = Assert.Single(runtime, i => i.Name == "USER");
        Assert.DoesNotMatch(@"^(root|0)(:|$)", user.Args);
        Assert.True(runtime.IndexOf(user) > runtime.FindLastIndex(i => i.Name == "RUN"), "nothing runs as root after USER");

        var entry = ExecForm(Assert.Single(runtime, i => i.Name == "ENTRYPOINT"));
        Assert.Equal(new[] { "dotnet", "/app/Sputnik.Cli.dll" }, entry);
        var cmd = ExecForm(Assert.Single(runtime, i => i.Name == "CMD"));
        AssertCliAccepts(cmd);
        Assert.Equal("serve", cmd[0]);
        Assert.Equal("0.0.0.0", Flag(cmd, "--host"));
        Assert.Equal(Flag(cmd, "--port"), Assert.Single(runtime, i => i.Name == "EXPOSE").Args);

        // The build context keeps the files the build copies.
        var ignored = File.ReadAllLines(Path.Combine(Fixtures.RepoRoot, ".dockerignore")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.DoesNotContain(ignored, l => l.TrimEnd('/') is "src" or "models");
    }
}
