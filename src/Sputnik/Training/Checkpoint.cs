using Sputnik.Models;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Sputnik.Training;

/// <summary>
/// Training state on disk: config, step, parameters and AdamW moments (plus optional extra floats, e.g. a reference
/// model). Written to a temporary file and renamed over the old one, so a kill at any moment leaves either the
/// previous or the new checkpoint, never a torn one.
/// </summary>
internal static class Checkpoint
{
    private const string Magic = "SPUTNIK-CKPT-1";

    public static void Save(string path, IArchConfig config, int step, ParameterBuffer p, AdamW opt, string tag = "")
    {
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        using (var w = new BinaryWriter(fs, Encoding.UTF8))
        {
            w.Write(Magic);
            w.Write(JsonSerializer.Serialize(TrainConfig.ShapeKey(config)));
            w.Write(tag);
            w.Write(step);
            w.Write(opt.Step);
            w.Write(p.Count);
            w.Write(MemoryMarshal.AsBytes(p.Data.AsSpan()));
            w.Write(MemoryMarshal.AsBytes(opt.M.AsSpan()));
            w.Write(MemoryMarshal.AsBytes(opt.V.AsSpan()));
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The tag a checkpoint was saved with (read before <see cref="Load"/> to name what run it belongs to).</summary>
    public static string ReadTag(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        if (r.ReadString() != Magic) throw new InvalidDataException($"{path} is not a Sputnik checkpoint");
        r.ReadString();
        return r.ReadString();
    }

    /// <summary>Restores parameters and optimizer state; returns the step to continue from.</summary>
    public static int Load(string path, IArchConfig config, ParameterBuffer p, AdamW opt, out string tag)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        if (r.ReadString() != Magic) throw new InvalidDataException($"{path} is not a Sputnik checkpoint");
        var shape = JsonSerializer.Deserialize<int[]>(r.ReadString())!;
        int[] want = TrainConfig.ShapeKey(config);
        if (!shape.SequenceEqual(want)) throw new InvalidDataException($"{path}: checkpoint shape [{string.Join(",", shape)}] differs from [{string.Join(",", want)}]");
        tag = r.ReadString();
        int step = r.ReadInt32();
        opt.Step = r.ReadInt32();
        if (r.ReadInt32() != p.Count) throw new InvalidDataException($"{path}: parameter count differs");
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(p.Data.AsSpan()));
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(opt.M.AsSpan()));
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(opt.V.AsSpan()));
        return step;
    }
}

/// <summary>Per-step metrics as CSV; on resume, rows at or after the resumed step are dropped so the file never repeats a step.</summary>
internal sealed class MetricsCsv
{
    private readonly string _path;

    public MetricsCsv(string path, string header, int resumeStep)
    {
        _path = path;
        var keep = new List<string> { header };
        if (resumeStep > 0 && File.Exists(path))
            keep.AddRange(File.ReadLines(path).Skip(1).Where(l => int.TryParse(l.Split(',')[0], out int s) && s < resumeStep));
        File.WriteAllLines(path, keep);
    }

    public void Append(params object[] values) =>
        File.AppendAllText(_path, string.Join(",", values.Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture))) + "\n");

    /// <summary>Reads a numeric column back (for charts).</summary>
    public static (double[] X, double[] Y) Column(string path, string xName, string yName)
    {
        var lines = File.ReadAllLines(path);
        var head = lines[0].Split(',');
        int xi = Array.IndexOf(head, xName), yi = Array.IndexOf(head, yName);
        var rows = lines.Skip(1).Select(l => l.Split(',')).Where(c => c.Length > Math.Max(xi, yi) && c[yi].Length > 0).ToList();
        double P(string s) => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
        return (rows.Select(c => P(c[xi])).ToArray(), rows.Select(c => P(c[yi])).ToArray());
    }
}
