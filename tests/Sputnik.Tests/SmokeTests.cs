using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests;

public class SmokeTests
{
    [Fact]
    public void Q8_0_block_is_34_bytes() => Assert.Equal(34, GgmlTypeInfo.BlockBytes(GgmlType.Q8_0));
}
