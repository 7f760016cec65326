using System.Text;
using Gate.Core.Report;
using Spectre.Console;

namespace Gate.Cli;

/// <summary>
/// Everything the gate command prints goes through here. Text that a model or sandbox controls (operator and tensor
/// names, summaries, reasons, evidence names) must stay inert on a terminal and in a CI log, so:
/// <list type="bullet">
/// <item><c>Console.Out</c>/<c>Console.Error</c> are replaced by writers that show every control, bidi and other
/// format character as a visible <c>\uXXXX</c> escape (<see cref="SafeText"/>), newlines and tabs excepted; no
/// plain write of any command can emit an escape sequence.</item>
/// <item>Spectre.Console, which must emit its own colour codes on a terminal, writes to the raw streams; whatever
/// foreign text it shows goes through <see cref="Show"/> (made inert, then markup-escaped).</item>
/// </list>
/// Colour only when the stream is a terminal and NO_COLOR is unset; progress bars only when stderr is a terminal.
/// <see cref="Capture"/> points all of it at other writers for one asynchronous flow, so that tests can run commands
/// in-process (several at once) and read what each printed.
/// </summary>
public static class Terminal
{
    /// <summary>Where one invocation's output goes: plain writers (already inert) and the Spectre consoles on the raw ones.</summary>
    private sealed record Streams(TextWriter Out, TextWriter Err, IAnsiConsole OutConsole, IAnsiConsole ErrConsole, bool OutIsTerminal, bool ErrIsTerminal);

    private static Streams process = new(Console.Out, Console.Error, AnsiConsole.Console, AnsiConsole.Console, false, false);
    private static readonly AsyncLocal<Streams?> captured = new();
    private static readonly Lock routeLock = new();
    private static bool routed;

    private static Streams Current => captured.Value ?? process;

    public static bool StdoutIsTerminal => Current.OutIsTerminal;
    public static bool StderrIsTerminal => Current.ErrIsTerminal;

    /// <summary>The Spectre console on stdout (tables).</summary>
    public static IAnsiConsole Out => Current.OutConsole;

    /// <summary>The Spectre console on stderr (progress bars, build logs).</summary>
    public static IAnsiConsole Err => Current.ErrConsole;

    public static void Install()
    {
        bool outTerminal = !Console.IsOutputRedirected, errTerminal = !Console.IsErrorRedirected;
        bool colour = Environment.GetEnvironmentVariable("NO_COLOR") is not { Length: > 0 } && Environment.GetEnvironmentVariable("TERM") != "dumb";
        TextWriter rawOut = Console.Out, rawErr = Console.Error;
        var outConsole = Create(rawOut, outTerminal, colour, width: null);
        process = new(new InertWriter(rawOut), new InertWriter(rawErr), outConsole, Create(rawErr, errTerminal, colour, width: null), outTerminal, errTerminal);
        AnsiConsole.Console = outConsole;
        Route();
    }

    /// <summary>
    /// Until disposed, everything this asynchronous flow prints — <c>Console.Out</c>/<c>Console.Error</c> and both
    /// Spectre consoles — goes to <paramref name="stdout"/> and <paramref name="stderr"/>, made inert exactly as on
    /// the real streams, with no colour and no terminal (as in a CI log <paramref name="width"/> columns wide).
    /// </summary>
    public static IDisposable Capture(TextWriter stdout, TextWriter stderr, int width = 200)
    {
        Route();
        var previous = captured.Value;
        TextWriter rawOut = TextWriter.Synchronized(stdout), rawErr = TextWriter.Synchronized(stderr);
        captured.Value = new(new InertWriter(rawOut), new InertWriter(rawErr), Create(rawOut, false, false, width), Create(rawErr, false, false, width), false, false);
        return new Restore(() => captured.Value = previous);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>Points Console.Out/Console.Error, once per process, at writers that follow <see cref="Current"/>.</summary>
    private static void Route()
    {
        lock (routeLock)
        {
            if (routed) return;
            if (captured.Value is null && process.Out == Console.Out) process = process with { Out = new InertWriter(Console.Out), Err = new InertWriter(Console.Error) };
            Console.SetOut(TextWriter.Synchronized(new FollowingWriter(() => Current.Out)));
            Console.SetError(TextWriter.Synchronized(new FollowingWriter(() => Current.Err)));
            routed = true;
        }
    }

    /// <summary>Forwards every write to whichever writer is current for the calling flow.</summary>
    private sealed class FollowingWriter(Func<TextWriter> target) : TextWriter
    {
        public override Encoding Encoding => target().Encoding;
        [System.Diagnostics.CodeAnalysis.AllowNull] public override string NewLine { get => target().NewLine; set { } }
        public override void Write(char value) => target().Write(value);
        public override void Write(string? value) => target().Write(value);
        public override void Write(char[] buffer, int index, int count) => target().Write(buffer, index, count);
        public override void WriteLine(string? value) => target().WriteLine(value);
        public override void WriteLine() => target().WriteLine();
        public override void Flush() => target().Flush();
    }

    /// <summary>Foreign text for Spectre markup: one inert line, markup-escaped.</summary>
    public static string Show(string? text) => Markup.Escape(SafeText.Line(text));

    private static IAnsiConsole Create(TextWriter raw, bool terminal, bool colour, int? width)
    {
        bool ansi = terminal && colour;
        return AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = ansi ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ansi ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
            Out = new RawOutput(raw, terminal, width),
        });
    }

    /// <summary>
    /// A raw stream for Spectre. Its width is the terminal's; a CI log is not a terminal, so there it is COLUMNS or
    /// 140, wide enough to keep table rows whole.
    /// </summary>
    private sealed class RawOutput(TextWriter writer, bool terminal, int? width) : IAnsiConsoleOutput
    {
        public TextWriter Writer => writer;
        public bool IsTerminal => terminal;
        public int Width => width ?? (terminal && TryWindow(() => Console.WindowWidth) is > 0 and var w ? w
            : int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var c) && c > 40 ? c : 140);
        public int Height => terminal && TryWindow(() => Console.WindowHeight) is > 0 and var h ? h : 40;
        public void SetEncoding(Encoding encoding) { }

        private static int TryWindow(Func<int> size)
        {
            try { return size(); }
            catch (IOException) { return 0; }
            catch (PlatformNotSupportedException) { return 0; }
        }
    }
}

/// <summary>A writer that passes text on with every unsafe character escaped (<see cref="SafeText.Text"/>: newline and tab stay).</summary>
public sealed class InertWriter(TextWriter inner) : TextWriter
{
    public override Encoding Encoding => inner.Encoding;
    public override IFormatProvider FormatProvider => inner.FormatProvider;
    [System.Diagnostics.CodeAnalysis.AllowNull] public override string NewLine { get => inner.NewLine; set => inner.NewLine = value; }

    // A lone char cannot be judged as half of a surrogate pair; every other unsafe one is escaped.
    public override void Write(char value)
    {
        if (char.IsSurrogate(value) || !SafeText.IsUnsafe(value) || value is '\n' or '\t' || (value == '\r' && NewLine.Contains('\r'))) inner.Write(value);
        else inner.Write(SafeText.Line(value.ToString()));
    }

    public override void Write(string? value) => inner.Write(Inert(value));
    public override void Write(char[] buffer, int index, int count) => inner.Write(Inert(new string(buffer, index, count)));
    public override void WriteLine(string? value) => inner.WriteLine(Inert(value));
    public override void WriteLine() => inner.WriteLine();
    public override void Flush() => inner.Flush();

    // A CR that belongs to the platform's newline (Windows) is kept; any other one could hide a line by overwriting it.
    private string Inert(string? value) => value is null ? "" : NewLine.Contains('\r') ? SafeText.Text(value.Replace(NewLine, "\n")).Replace("\n", NewLine) : SafeText.Text(value);
}
