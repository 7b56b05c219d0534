using System.Reflection;
using System.Runtime.CompilerServices;

namespace Sputnik.Tensors;

/// <summary>
/// Runs the static constructors of the kernel classes (namespaces Sputnik.Tensors and below) before any kernel is
/// compiled. The CLI runs with tiered compilation off, so each method is compiled once, fully optimised, at its first
/// call. If a class whose static readonly fields a kernel reads (<c>Prefetch.Enabled</c>, pattern vectors) is not yet
/// initialised at that moment, the JIT cannot treat those fields as constants: it compiles a class-initialisation check
/// and a field load into the loop, and around that possible helper call it keeps the accumulators in stack slots. The
/// F16 decode kernel was compiled that way (a check and a load of <c>Prefetch.Enabled</c>, and five 64-byte loads and
/// stores, per loop step). Initialised first, the same fields fold to constants, the branches on them disappear and the
/// accumulators stay in registers. Decode is bound by memory, so F16 decode measured no faster (alternating, 4 rounds),
/// but which code a kernel gets no longer depends on the order in which a process first touched its classes
/// (the cause of the run-to-run 2× prefill swings noted at <c>Q4KInterleaved.Patterns</c>).
/// </summary>
internal static class KernelStatics
{
    private static int s_done;

    /// <summary>Initialises every kernel class once per process (a few milliseconds, the first time only).</summary>
    public static void EnsureInitialized()
    {
        if (Interlocked.Exchange(ref s_done, 1) == 1) return;
        Type?[] types;
        try { types = typeof(KernelStatics).Assembly.GetTypes(); }
        catch (ReflectionTypeLoadException ex) { types = ex.Types; } // the types that did load
        foreach (var type in types)
        {
            if (type == null) continue;
            if (type.Namespace is not { } ns || !ns.StartsWith("Sputnik.Tensors", StringComparison.Ordinal)) continue;
            if (type.ContainsGenericParameters || type.TypeInitializer == null) continue;
            try { RuntimeHelpers.RunClassConstructor(type.TypeHandle); }
            catch (TypeInitializationException) { } // the class's own first use reports it, as before
        }
    }
}
