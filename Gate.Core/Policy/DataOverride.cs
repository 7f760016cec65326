namespace Gate.Core.Policy;

/// <summary>
/// A data override: a dataset's file replaced at check time by the caller (not by the policy), as the caller gave
/// it. <c>NAME=PATH</c> replaces the inputs (an image source replaces inputs and labels), <c>NAME.labels=PATH</c>
/// the labels. Errors about one carry it (<see cref="PolicyError.Override"/>) so a front end can name it its own way.
/// </summary>
public sealed record DataOverride(string Dataset, bool Labels, string Path)
{
    public const string LabelsSuffix = ".labels";

    /// <summary>An entry of the caller's overrides: key <c>NAME</c> or <c>NAME.labels</c>, value the path as given.</summary>
    public static DataOverride Parse(string key, string path) =>
        key.EndsWith(LabelsSuffix, StringComparison.Ordinal) ? new(key[..^LabelsSuffix.Length], true, path) : new(key, false, path);

    public string Key => Labels ? Dataset + LabelsSuffix : Dataset;

    public override string ToString() => $"{Key}={Path}";
}
