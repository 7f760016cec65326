using System.Runtime.InteropServices;

namespace Gate.Core.IO;

/// <summary>
/// Opens the files a user names as input (policy, model, a model's external data) only when they are regular
/// files. A FIFO would block the open forever, a character device such as /dev/zero never ends, a block device
/// is a disk and a directory is no file at all: each is refused with a <see cref="GateInputException"/> that says
/// what the path is, before anything is opened. Symbolic links in <em>path</em> are followed (the caller decides
/// where links may lead).
/// </summary>
public static class RegularFile
{
    /// <summary>What a path is; <see cref="Unknown"/> when it cannot be examined (e.g. no permission), so opening it reports why.</summary>
    public enum Kind { Missing, Regular, Directory, Fifo, CharacterDevice, BlockDevice, Socket, Other, Unknown }

    /// <summary>What <paramref name="path"/> is, following symbolic links.</summary>
    public static Kind KindOf(string path)
    {
        if (OperatingSystem.IsLinux() && StatxMode(path) is { } mode)
            return mode switch
            {
                0 => Kind.Missing,
                -1 => Kind.Unknown,
                _ => (mode & 0xF000) switch
                {
                    0x8000 => Kind.Regular, 0x4000 => Kind.Directory, 0x1000 => Kind.Fifo, 0x2000 => Kind.CharacterDevice,
                    0x6000 => Kind.BlockDevice, 0xC000 => Kind.Socket, _ => Kind.Other,
                },
            };
        // Without statx (not Linux, or a libc older than glibc 2.28) only directories can be told apart.
        return Directory.Exists(path) ? Kind.Directory : File.Exists(path) ? Kind.Regular : Kind.Missing;
    }

    /// <summary>
    /// Opens a regular file for reading. <paramref name="what"/> names it in messages ("policy file",
    /// "tensor 'w': external data file 'w.bin'"), prefixed by <paramref name="shownAs"/> (default: the path).
    /// </summary>
    public static FileStream OpenRead(string path, string what, string? shownAs = null)
    {
        shownAs ??= path;
        var kind = KindOf(path);
        string? refusal = kind switch
        {
            Kind.Regular or Kind.Unknown => null,
            Kind.Missing => "not found",
            Kind.Directory => "is a directory, not a file",
            Kind.Fifo => "is a named pipe (FIFO), not a regular file: reading it would wait for a writer forever",
            Kind.CharacterDevice => "is a character device, not a regular file",
            Kind.BlockDevice => "is a block device, not a regular file",
            Kind.Socket => "is a socket, not a regular file",
            _ => "is not a regular file",
        };
        if (refusal is not null) throw new GateInputException($"{shownAs}: {what} {refusal}");
        try { return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new GateInputException($"{shownAs}: cannot read {what}: {e.Message}"); }
    }

    /// <summary>Reads a whole regular file of at most <paramref name="maxBytes"/> bytes.</summary>
    public static byte[] ReadAll(string path, string what, long maxBytes, string? shownAs = null)
    {
        shownAs ??= path;
        using var fs = OpenRead(path, what, shownAs);
        if (fs.Length > maxBytes) throw new GateInputException($"{shownAs}: {what} is {fs.Length} bytes (limit {maxBytes})");
        return ReadExactly(fs, 0, (int)fs.Length, what, shownAs);
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/> of an open file; a file that shrank meanwhile is bad input.</summary>
    public static byte[] ReadExactly(FileStream fs, long offset, int length, string what, string shownAs)
    {
        var buf = new byte[length];
        try
        {
            fs.Seek(offset, SeekOrigin.Begin);
            fs.ReadExactly(buf);
        }
        catch (EndOfStreamException) { throw new GateInputException($"{shownAs}: {what} changed while it was read (shorter than its size said)"); }
        catch (IOException e) { throw new GateInputException($"{shownAs}: cannot read {what}: {e.Message}"); }
        return buf;
    }

    /// <summary>st_mode of a path: 0 when it does not exist, -1 when it cannot be examined; null when statx is unavailable.</summary>
    private static int? StatxMode(string path)
    {
        // statx(2) has the same struct layout on every Linux architecture (stat(2) does not); stx_mode is at byte 28.
        Span<byte> buf = stackalloc byte[256];
        try
        {
            if (statx(AtFdCwd, path, 0, StatxType, ref MemoryMarshal.GetReference(buf)) == 0) return BitConverter.ToUInt16(buf[28..30]);
            return Marshal.GetLastPInvokeError() is 2 or 20 ? 0 : -1; // ENOENT, ENOTDIR: not there
        }
        catch (EntryPointNotFoundException) { return null; }
    }

    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int dirfd, string path, int flags, uint mask, ref byte statxbuf);
}
