using System.Text;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// Splits an untrusted stream into lines without unbounded buffering: a line longer than the cap is dropped up to
/// its newline (a runner that floods one endless line must not exhaust the host's memory).
/// </summary>
public static class BoundedLines
{
    public static async Task PumpAsync(Stream stream, Action<string> onLine, int maxChars, CancellationToken ct = default)
    {
        var decoder = Encoding.UTF8.GetDecoder();
        var bytes = new byte[8192];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var line = new StringBuilder();
        bool discarding = false;
        int n;
        while ((n = await stream.ReadAsync(bytes, ct).ConfigureAwait(false)) > 0)
        {
            int count = decoder.GetChars(bytes, 0, n, chars, 0);
            for (int i = 0; i < count; i++)
            {
                char c = chars[i];
                if (c == '\n')
                {
                    if (!discarding) onLine(line.ToString().TrimEnd('\r'));
                    line.Clear();
                    discarding = false;
                }
                else if (!discarding)
                {
                    line.Append(c);
                    if (line.Length > maxChars) { line.Clear(); discarding = true; }
                }
            }
        }
        if (line.Length > 0 && !discarding) onLine(line.ToString());
    }
}
