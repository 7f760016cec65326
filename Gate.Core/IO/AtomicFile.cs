namespace Gate.Core.IO;

/// <summary>
/// Writes a file so that readers see either the old content or the complete new content, never a prefix:
/// the bytes go to a temporary file in the same folder, are flushed to disk, and the file is renamed into place.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, byte[] bytes, UnixFileMode? unixMode = null)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = $"{full}.{Guid.NewGuid():N}.tmp";
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (unixMode is { } mode && !OperatingSystem.IsWindows()) options.UnixCreateMode = mode;
            using (var fs = new FileStream(tmp, options))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteText(string path, string text, UnixFileMode? unixMode = null) =>
        Write(path, new System.Text.UTF8Encoding(false).GetBytes(text), unixMode);
}
