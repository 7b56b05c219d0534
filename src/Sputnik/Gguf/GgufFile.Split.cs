namespace Sputnik.Gguf;

// Split models (GgufSplit): the set opens as one GgufFile. Metadata comes from the first shard (the only one that
// carries it); every shard is opened, memory-mapped and validated like any GGUF file, and the tensors of all shards
// go into one lookup, each tagged with the shard that holds its data.
internal sealed unsafe partial class GgufFile
{
    // [this] for a single file; for a split model, this (the first shard) and the other shards in order.
    private GgufFile[] _shards;

    /// <summary>Number of files the model is split into (1 for a single file).</summary>
    public int SplitCount => _shards.Length;

    /// <summary>The model's files in shard order (one path for a single file).</summary>
    public IReadOnlyList<string> ShardPaths => Array.ConvertAll(_shards, s => s.Path);

    /// <summary>Bytes of all the model's files together.</summary>
    public long TotalFileSize
    {
        get
        {
            long total = 0;
            foreach (var s in _shards) total += s.FileSize;
            return total;
        }
    }

    /// <summary>The file that holds a tensor's data (for positioned reads that bypass the mapping).</summary>
    public string ShardPath(GgufTensorInfo t) => ShardOf(t).Path;

    /// <summary>Absolute offset of a tensor's data in the file <see cref="ShardPath"/> names.</summary>
    public long FileOffset(GgufTensorInfo t) => ShardOf(t).DataOffset + t.Offset;

    private GgufFile ShardOf(GgufTensorInfo t) =>
        (uint)t.Shard < (uint)_shards.Length
            ? _shards[t.Shard]
            : throw new ArgumentException($"tensor '{DisplayText.Name(t.Name)}' is in shard {t.Shard + 1}, but {Path} has {_shards.Length} shard(s)");

    private static GgufFile OpenWithShards(string path)
    {
        var file = new GgufFile(path);
        try
        {
            if (GgufSplit.ReadKeys(file) is not { } keys) return file;
            if (keys.No != 0)
            {
                // Given a later shard: the first one (metadata, and where llama.cpp starts) is found by name.
                string prefix = GgufSplit.PrefixOf(path, keys.No, keys.Count)
                    ?? throw new GgufFormatException($"{path} is shard {keys.No + 1} of {keys.Count} of a split model, but its name does not end in " +
                        $"'{GgufSplit.ShardPath("", keys.No, keys.Count)}', so the other shards cannot be found");
                string firstPath = GgufSplit.ShardPath(prefix, 0, keys.Count);
                file.Dispose();
                file = OpenShard(firstPath, 0, keys.Count, path);
                var first = GgufSplit.ReadKeys(file);
                if (first is not { No: 0 } || first.Count != keys.Count)
                    throw new GgufFormatException($"{firstPath}: expected shard 1 of {keys.Count} ({GgufSplit.NoKey} = 0, {GgufSplit.CountKey} = {keys.Count}), found " +
                        (first == null ? "no split keys" : $"{GgufSplit.NoKey} = {first.No}, {GgufSplit.CountKey} = {first.Count}"));
                keys = first;
            }
            file.OpenOtherShards(keys);
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Opens shards 2…n of the split model whose first shard this is, and merges their tensors into this file's lookup.</summary>
    private void OpenOtherShards(SplitKeys keys)
    {
        int count = keys.Count;
        string prefix = GgufSplit.PrefixOf(Path, 0, count)
            ?? throw new GgufFormatException($"{Path} is shard 1 of {count} of a split model, but its name does not end in " +
                $"'{GgufSplit.ShardPath("", 0, count)}', so the other shards cannot be found");
        long expectedTensors = keys.TensorsCount
            ?? throw new GgufFormatException($"{Path}: split model without {GgufSplit.TensorsCountKey} (the number of tensors in all {count} shards)");
        // Assigned before the shards open, so Dispose closes whichever opened when a later one fails.
        _shards = new GgufFile[count];
        _shards[0] = this;
        var tensors = new List<GgufTensorInfo>(Tensors);
        for (int i = 1; i < count; i++)
        {
            string shardPath = GgufSplit.ShardPath(prefix, i, count);
            var shard = OpenShard(shardPath, i, count, Path);
            _shards[i] = shard;
            CheckShardKeys(shard, i, count, expectedTensors);
            foreach (var t in shard.Tensors)
            {
                var tagged = t with { Shard = i };
                if (!_tensorsByName.TryAdd(t.Name, tagged))
                    throw new GgufFormatException($"tensor '{DisplayText.Name(t.Name)}' appears in both {_shards[_tensorsByName[t.Name].Shard].Path} and {shardPath}");
                tensors.Add(tagged);
            }
        }
        if (tensors.Count != expectedTensors)
            throw new GgufFormatException($"{Path}: {GgufSplit.TensorsCountKey} = {expectedTensors}, but the {count} shards hold {tensors.Count} tensors");
        Tensors = tensors.ToArray();
    }

    /// <summary>Opens one shard as a GGUF file; errors name the shard, since the user named another file of the set.</summary>
    private static GgufFile OpenShard(string shardPath, int index, int count, string givenPath)
    {
        if (!File.Exists(shardPath))
            throw new FileNotFoundException($"split model {givenPath}: shard {index + 1} of {count} is missing: {shardPath}", shardPath);
        try
        {
            return new GgufFile(shardPath);
        }
        catch (GgufFormatException ex)
        {
            throw new GgufFormatException($"{shardPath} (shard {index + 1} of {count}): {ex.Message}");
        }
    }

    private void CheckShardKeys(GgufFile shard, int index, int count, long expectedTensors)
    {
        string where = $"{shard.Path} (shard {index + 1} of {count} of {Path})";
        if (!shard.Metadata.ContainsKey(GgufSplit.CountKey))
            throw new GgufFormatException($"{where}: {GgufSplit.CountKey} is missing; every shard of a split model carries {GgufSplit.NoKey} and {GgufSplit.CountKey}");
        if (GgufSplit.ReadKeys(shard) is not { } keys)
            throw new GgufFormatException($"{where}: {GgufSplit.CountKey} = {shard.Metadata[GgufSplit.CountKey]}, but the first shard says {count}");
        if (keys.Count != count)
            throw new GgufFormatException($"{where}: {GgufSplit.CountKey} = {keys.Count}, but the first shard says {count}");
        if (keys.No != index)
            throw new GgufFormatException($"{where}: {GgufSplit.NoKey} = {keys.No}, expected {index} (this file is shard {keys.No + 1})");
        if (keys.TensorsCount is { } n && n != expectedTensors)
            throw new GgufFormatException($"{where}: {GgufSplit.TensorsCountKey} = {n}, but the first shard says {expectedTensors}");
    }
}
