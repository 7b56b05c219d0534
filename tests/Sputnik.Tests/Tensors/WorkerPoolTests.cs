using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class WorkerPoolTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Every_index_runs_exactly_once_across_many_calls(int threads)
    {
        using var pool = new WorkerPool(threads);
        Assert.Equal(threads, pool.Threads);
        var rng = new Random(threads);
        for (int call = 0; call < 3000; call++)
        {
            int total = rng.Next(0, 50);
            var hits = new int[total];
            var threadIds = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
            pool.For(total, (s, e) =>
            {
                threadIds[Environment.CurrentManagedThreadId] = true;
                for (int i = s; i < e; i++) Interlocked.Increment(ref hits[i]);
            }, minPerThread: rng.Next(1, 5));
            Assert.All(hits, h => Assert.Equal(1, h));
            Assert.True(threadIds.Count <= threads);
            // now and then let the workers fall asleep, so the wake-up path is exercised too
            if (call % 500 == 499) Thread.Sleep(5);
        }
    }

    [Fact]
    public void Worker_exception_surfaces_in_the_caller_and_the_pool_keeps_working()
    {
        using var pool = new WorkerPool(2);
        var ex = Assert.Throws<AggregateException>(() => pool.For(10, (s, e) => { if (s > 0) throw new InvalidOperationException("boom"); }));
        Assert.IsType<InvalidOperationException>(ex.InnerException);
        int sum = 0;
        pool.For(10, (s, e) => Interlocked.Add(ref sum, e - s));
        Assert.Equal(10, sum);
    }

    [Fact]
    public void Calls_do_not_allocate()
    {
        using var pool = new WorkerPool(2);
        Action<int, int> body = (s, e) => { };
        for (int i = 0; i < 100; i++) pool.For(100, body);
        Assert.Equal(0, Allocations.FewestBytes(() => pool.For(100, body), steps: 1000));
    }
}
