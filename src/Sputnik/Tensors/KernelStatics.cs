using System.Runtime.CompilerServices;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

/// <summary>
/// Runs the static constructors of the classes whose static readonly fields the kernels read, before any kernel is
/// compiled. The CLI runs with tiered compilation off, so each method is compiled once, fully optimised, at its first
/// call. If a class whose static readonly fields a kernel reads (<c>Prefetch.Enabled</c>, pattern vectors) is not yet
/// initialised at that moment, the JIT cannot treat those fields as constants: it compiles a class-initialisation check
/// and a field load into the loop, and around that possible helper call it keeps the accumulators in stack slots. The
/// F16 decode kernel was compiled that way (a check and a load of <c>Prefetch.Enabled</c>, and five 64-byte loads and
/// stores, per loop step). Initialised first, the same fields fold to constants, the branches on them disappear and the
/// accumulators stay in registers. F16 decode measured no faster (alternating, 4 rounds),
/// but which code a kernel gets no longer depends on the order in which a process first touched its classes
/// (the cause of the run-to-run 2× prefill swings noted at <c>Q4KInterleaved.Patterns</c>).
/// A kernel that reads static readonly fields of another class adds that class here. (Every class of the
/// namespace, found by reflection, took 47 ms at startup; these three take 11 ms, measured once each.)
/// </summary>
internal static class KernelStatics
{
    private static int s_done;

    /// <summary>Initialises the kernel classes once per process.</summary>
    public static void EnsureInitialized()
    {
        if (Interlocked.Exchange(ref s_done, 1) == 1) return;
        // MatVec and MatMul are partial classes over many files (their pattern vectors, the F16 table, the dispatch
        // path); Prefetch's switches are read in every decode loop.
        RuntimeHelpers.RunClassConstructor(typeof(Prefetch).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(MatVec).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(MatMul).TypeHandle);
    }
}
