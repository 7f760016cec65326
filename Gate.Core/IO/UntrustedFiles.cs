using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Gate.Core.IO;

/// <summary>
/// Reads files from a folder whose contents someone else controls (what a sandbox wrote, an evidence folder handed
/// to <c>gate verify</c>): every component below the trusted folder is opened with openat(O_NOFOLLOW) — a folder
/// only with O_DIRECTORY, the file with O_NONBLOCK so a FIFO cannot block — and the opened file must be a regular
/// file (statx on the descriptor, not on the name) within the size cap. So no symbolic link, FIFO, device or socket
/// is ever followed or read, at any depth, and nothing is read twice by name.
/// </summary>
public static partial class UntrustedFiles
{
    /// <summary>Reads <paramref name="relativePath"/> ('/'-separated, below <paramref name="trustedDir"/>). Throws <see cref="UnsafeFileException"/>.</summary>
    public static byte[] ReadAll(string trustedDir, string relativePath, long maxBytes)
    {
        using var fd = Open(trustedDir, relativePath, maxBytes, out long length);
        var bytes = new byte[length];
        int done = 0;
        while (done < bytes.Length)
        {
            int n = RandomAccess.Read(fd, bytes.AsSpan(done), done);
            if (n == 0) throw new UnsafeFileException(relativePath, $"shrank while it was read ({done} of {length} bytes)");
            done += n;
        }
        // A file that grows while we read it is not the file we measured.
        Span<byte> probe = stackalloc byte[1];
        if (RandomAccess.Read(fd, probe, length) != 0) throw new UnsafeFileException(relativePath, "grew while it was read");
        return bytes;
    }

    /// <summary>SHA-256 (lower-case hex) of a file read as <see cref="ReadAll"/> does, streamed rather than held in memory.</summary>
    public static string Sha256Hex(string trustedDir, string relativePath, long maxBytes)
    {
        using var fd = Open(trustedDir, relativePath, maxBytes, out long length);
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        long done = 0;
        while (done <= length)
        {
            int n = RandomAccess.Read(fd, buf, done);
            if (n == 0) break;
            done += n;
            if (done > length) throw new UnsafeFileException(relativePath, "grew while it was read");
            sha.AppendData(buf, 0, n);
        }
        if (done != length) throw new UnsafeFileException(relativePath, $"shrank while it was read ({done} of {length} bytes)");
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Opens a regular file for reading without following links; <paramref name="length"/> is its size (≤ <paramref name="maxBytes"/>).</summary>
    public static SafeFileHandle Open(string trustedDir, string relativePath, long maxBytes, out long length)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("reading untrusted files without following links needs Linux (openat, statx)");
        var parts = Components(relativePath);
        // The trusted folder is the caller's own choice of path: links in it are followed; nothing below it is.
        int dir = openat(AtFdCwd, Path.GetFullPath(trustedDir), Flags.Directory | Flags.Cloexec, 0);
        if (dir < 0) throw new UnsafeFileException(relativePath, $"its folder {trustedDir} cannot be opened ({Error(Marshal.GetLastPInvokeError())})");
        try
        {
            for (int i = 0; i < parts.Length - 1; i++)
            {
                int next = openat(dir, parts[i], Flags.Directory | Flags.NoFollow | Flags.Cloexec, 0);
                int errno = Marshal.GetLastPInvokeError();
                if (next < 0) throw new UnsafeFileException(relativePath, Reason(dir, parts[i], errno, folder: true));
                close(dir);
                dir = next;
            }
            int fd = openat(dir, parts[^1], Flags.NoFollow | Flags.NonBlock | Flags.Cloexec, 0);
            if (fd < 0) throw new UnsafeFileException(relativePath, Reason(dir, parts[^1], Marshal.GetLastPInvokeError(), folder: false));
            var handle = new SafeFileHandle(fd, ownsHandle: true);
            try
            {
                var (mode, size) = Stat(fd, "", AtEmptyPath) ?? throw new UnsafeFileException(relativePath, $"cannot be examined ({Error(Marshal.GetLastPInvokeError())})");
                if ((mode & SIfMt) != SIfReg) throw new UnsafeFileException(relativePath, $"is {TypeName(mode)}, not a regular file");
                if (size > maxBytes) throw new UnsafeFileException(relativePath, $"is {size} bytes (limit {maxBytes})") { TooLarge = true };
                length = size;
                return handle;
            }
            catch { handle.Dispose(); throw; }
        }
        finally { close(dir); }
    }

    /// <summary>The components of a relative path; anything that could leave the folder is refused.</summary>
    private static string[] Components(string relativePath)
    {
        var parts = relativePath.Split('/');
        if (relativePath.Length == 0 || relativePath.Contains('\0') || parts.Any(p => p is "" or "." or ".."))
            throw new UnsafeFileException(relativePath, "is not a plain relative path (empty, absolute, '.', '..' or NUL)");
        return parts;
    }

    /// <summary>Why an openat failed, in words: ELOOP under O_NOFOLLOW means the name is a symbolic link.</summary>
    private static string Reason(int dir, string name, int errno, bool folder)
    {
        if (errno == ErrNoEnt) return "is missing";
        if (errno == ErrLoop || errno == ErrNotDir && Stat(dir, name, AtSymlinkNoFollow) is { } st && (st.Mode & SIfMt) == SIfLnk)
            return folder ? $"has a symbolic link in its path ('{name}'), which is never followed" : "is a symbolic link, which is never followed";
        if (errno == ErrNotDir && Stat(dir, name, AtSymlinkNoFollow) is { } st2) return $"has '{name}' in its path, which is {TypeName(st2.Mode)}, not a folder";
        return $"cannot be opened ({Error(errno)})";
    }

    private static (uint Mode, long Size)? Stat(int dir, string name, int flags)
    {
        Span<byte> buf = stackalloc byte[256];
        unsafe
        {
            fixed (byte* p = buf)
                if (statx(dir, name, flags, StatxType | StatxSize, p) != 0) return null;
        }
        // struct statx (kernel ABI, the same on every architecture): stx_mode is a u16 at 28, stx_size a u64 at 40.
        return (BitConverter.ToUInt16(buf[28..30]), BitConverter.ToInt64(buf[40..48]));
    }

    private static string TypeName(uint mode) => (mode & SIfMt) switch
    {
        SIfDir => "a folder",
        SIfLnk => "a symbolic link",
        SIfIfo => "a FIFO (named pipe)",
        SIfChr => "a character device",
        SIfBlk => "a block device",
        SIfSock => "a socket",
        _ => "a special file",
    };

    private static string Error(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    private const int AtFdCwd = -100, AtEmptyPath = 0x1000, AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1, StatxSize = 0x200;
    private const uint SIfMt = 0xF000, SIfReg = 0x8000, SIfDir = 0x4000, SIfLnk = 0xA000, SIfIfo = 0x1000, SIfChr = 0x2000, SIfBlk = 0x6000, SIfSock = 0xC000;
    private const int ErrNoEnt = 2, ErrNotDir = 20, ErrLoop = 40;

    /// <summary>open(2) flags; O_DIRECTORY and O_NOFOLLOW differ between x86-64 and the arm family.</summary>
    private static class Flags
    {
        private static readonly bool Arm = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm;
        public static readonly int Directory = Arm ? 0x4000 : 0x10000;
        public static readonly int NoFollow = Arm ? 0x8000 : 0x20000;
        public const int NonBlock = 0x800, Cloexec = 0x80000;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(int dirfd, string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buf);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}

/// <summary>A file from an untrusted folder was refused (link, FIFO, device, too large, missing, odd path): the message says which and why.</summary>
public sealed class UnsafeFileException(string relativePath, string reason) : IOException($"'{relativePath}' {reason}")
{
    public string RelativePath { get; } = relativePath;
    public string Reason { get; } = reason;
    public bool Missing => Reason == "is missing";
    /// <summary>A regular file refused only for its size: a matter of scale, not of tampering (callers may confine its effect).</summary>
    public bool TooLarge { get; init; }
}
