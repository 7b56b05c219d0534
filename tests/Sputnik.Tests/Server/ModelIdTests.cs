using Xunit;
using Sputnik.Server;

namespace Sputnik.Tests.Server;

/// <summary>The name a server gives the model it serves when no --alias is set.</summary>
public class ModelIdTests
{
    [Theory]
    [InlineData("/models/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M")]
    [InlineData("/models/big-Q8_0-00001-of-00003.gguf", "big-Q8_0")]
    [InlineData("/models/big-Q8_0-00002-of-00003.gguf", "big-Q8_0")]
    [InlineData("relative.gguf", "relative")]
    [InlineData("/models/no-extension", "no-extension")]
    public void Default_id_is_the_file_name_without_extension_or_shard_suffix(string path, string expected) =>
        Assert.Equal(expected, ModelHost.DefaultId(path));
}
