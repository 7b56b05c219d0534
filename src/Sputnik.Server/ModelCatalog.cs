using Sputnik.Hub;

namespace Sputnik.Server;

/// <summary>
/// What a multi-model server can serve, and by which names: the model files it was given (named by their file
/// name without .gguf, as a single-model server names its one), every GGUF model in the hub cache (by its reference,
/// <c>owner/repo:QUANT</c>, and by its file name without .gguf), and --alias names. The cache is listed again when
/// a name is not found or a listing is asked for (at most once a second), so a model pulled by another process
/// (`sputnik pull`) appears without a restart. A request may name only what is listed, never an arbitrary path.
/// </summary>
internal sealed class ModelCatalog
{
    private readonly ServerOptions _options;
    private readonly HubSettings? _hub;
    private readonly Action<string>? _warn;
    private readonly object _lock = new();
    // What each file was found to be, so listing again reads only new or changed files; null: not a model we can serve.
    private readonly Dictionary<(string Id, string Target, long Length, DateTime Written), ServableModel?> _described = [];
    private IReadOnlyList<ServableModel> _models = [];
    private Dictionary<string, ServableModel> _names = new(StringComparer.Ordinal);
    private long _listedAt;

    /// <summary>Lists the models now; an --alias naming nothing servable is an ArgumentException.</summary>
    public ModelCatalog(ServerOptions options, HubSettings? hub, Action<string>? warn)
    {
        _options = options;
        _hub = hub;
        _warn = warn;
        Refresh(strictAliases: true);
    }

    /// <summary>Every servable model, the given files first, then the cache's by reference.</summary>
    public IReadOnlyList<ServableModel> Models
    {
        get
        {
            RefreshIfOlderThan(TimeSpan.FromSeconds(1));
            lock (_lock) return _models;
        }
    }

    /// <summary>
    /// The model <paramref name="name"/> names: a served name or alias (any case; Ollama's ":latest" tag ignored),
    /// or a hub reference the cache resolves to a listed file (owner/repo picks the default quant). Null: none.
    /// </summary>
    public ServableModel? Find(string name)
    {
        if (Lookup(name) is { } found) return found;
        RefreshIfOlderThan(TimeSpan.FromSeconds(1));
        return Lookup(name);
    }

    private ServableModel? Lookup(string name)
    {
        Dictionary<string, ServableModel> names;
        IReadOnlyList<ServableModel> models;
        lock (_lock) (names, models) = (_names, _models);
        if (names.TryGetValue(name, out var m)) return m;
        foreach (var (key, value) in names)
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase)) return value;
        if (name.EndsWith(":latest", StringComparison.OrdinalIgnoreCase)) return Lookup(name[..^":latest".Length]);
        if (_hub == null) return null;
        try
        {
            if (!ModelReference.TryParse(name, out var reference) || new ModelHub(_hub).FindCached(reference!, exact: false) is not { } cached) return null;
            string path = Path.GetFullPath(cached.Path);
            return models.FirstOrDefault(e => Path.GetFullPath(e.Path) == path);
        }
        catch (HubException)
        {
            return null; // text that looks like a reference but is malformed names nothing
        }
    }

    private void RefreshIfOlderThan(TimeSpan age)
    {
        if (Environment.TickCount64 - Interlocked.Read(ref _listedAt) >= age.TotalMilliseconds) Refresh(strictAliases: false);
    }

    /// <summary>Lists the files and the cache again (after a pull or a delete).</summary>
    public void Refresh() => Refresh(strictAliases: false);

    private void Refresh(bool strictAliases)
    {
        lock (_lock)
        {
            var models = new List<ServableModel>();
            var names = new Dictionary<string, ServableModel>(StringComparer.Ordinal);
            IEnumerable<string> given = string.IsNullOrWhiteSpace(_options.ModelPath) ? _options.ModelPaths : _options.ModelPaths.Prepend(_options.ModelPath);
            foreach (string path in given) Add(ModelHost.DefaultId(path), path, []);
            if (_hub != null)
            {
                IReadOnlyList<ModelHub.CachedModel> cached;
                try
                {
                    cached = new ModelHub(_hub).List();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    _warn?.Invoke($"cannot list the hub cache {_hub.CacheRoot}: {e.Message}");
                    cached = [];
                }
                foreach (var c in cached.OrderBy(c => c.Reference, StringComparer.Ordinal))
                    Add(c.Reference, c.LocalPaths[0], [ModelHost.DefaultId(c.File)]);
            }
            foreach (var (alias, target) in _options.Aliases)
            {
                var entry = names.GetValueOrDefault(target) ?? models.FirstOrDefault(m => SamePath(m.Path, target));
                if (entry == null && File.Exists(target)) entry = Add(alias, target, []);
                if (entry == null)
                {
                    if (strictAliases) throw new ArgumentException($"--alias {alias}={target}: '{target}' is neither a served model nor a model file");
                    continue;
                }
                if (strictAliases && names.TryGetValue(alias, out var other) && other != entry)
                    throw new ArgumentException($"--alias {alias}={target}: '{alias}' already names {other.Id}");
                names[alias] = entry;
            }
            (_models, _names) = (models, names);
            Interlocked.Exchange(ref _listedAt, Environment.TickCount64);

            ServableModel? Add(string id, string path, IEnumerable<string> aliases)
            {
                if (names.ContainsKey(id)) return null; // the first model with a name keeps it
                var m = Describe(id, path);
                if (m == null) return null;
                models.Add(m);
                names[id] = m;
                foreach (string alias in aliases) names.TryAdd(alias, m);
                return m;
            }
        }
    }

    private static bool SamePath(string a, string b) => Path.GetFullPath(a) == Path.GetFullPath(b);

    private ServableModel? Describe(string id, string path)
    {
        var target = HubCache.Target(path);
        if (!target.Exists)
        {
            _warn?.Invoke($"model file {path} does not exist");
            return null;
        }
        var key = (id, target.FullName, target.Length, target.LastWriteTimeUtc);
        if (_described.TryGetValue(key, out var known)) return known;
        ServableModel? m;
        try
        {
            m = ServableModel.Describe(id, path, _options);
        }
        catch (Exception e) when (e is Sputnik.Gguf.GgufFormatException or IOException or UnauthorizedAccessException or NotSupportedException or InvalidDataException)
        {
            _warn?.Invoke($"not serving {path}: {e.Message}");
            m = null;
        }
        _described[key] = m;
        return m;
    }
}
