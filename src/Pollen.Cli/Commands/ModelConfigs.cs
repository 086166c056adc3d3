using Pollen.Model.Config;

namespace Pollen.Cli.Commands;

/// <summary>The <c>--config</c> value of commands that build a model: a preset name or a config.json path.</summary>
internal static class ModelConfigs
{
    /// <summary>The preset called <paramref name="config"/>, or the config read from that file or directory.</summary>
    public static ModelConfig Resolve(string config)
    {
        if (ModelPresets.Names.Contains(config))
        {
            return ModelPresets.Get(config);
        }
        if (File.Exists(config) || Directory.Exists(config))
        {
            return ModelConfig.Load(config);
        }
        throw new UsageException($"--config '{config}' is neither a preset ({string.Join(", ", ModelPresets.Names)}) nor a config.json path");
    }
}
