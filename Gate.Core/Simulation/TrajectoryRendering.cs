using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gate.Core.Simulation;

/// <summary>Trajectories as JSON evidence, ASCII frames for the terminal and SVG frames for the report.</summary>
public static class TrajectoryRendering
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        PreferredObjectCreationHandling = JsonObjectCreationHandling.Populate,
    };

    public static string ToJson(Trajectory t) => JsonSerializer.Serialize(t, Json);

    public static Trajectory FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<Trajectory>(json, Json) ?? throw new GateInputException($"{source}: empty trajectory file");
        }
        catch (JsonException e) { throw new GateInputException($"{source}: not a Gate trajectory file: {e.Message}"); }
    }

    /// <summary>Frame 0 is the start; frame k follows step k.</summary>
    public static IEnumerable<string> AsciiFrames(Trajectory t)
    {
        yield return Frame(0, "start", t.InitialBoard, null);
        foreach (var s in t.Steps)
        {
            var note = s.Proposed == s.Applied ? s.Proposed : $"{s.Proposed} (applied {s.Applied})";
            var calls = string.Join(", ", s.Calls.Where(c => c.Actuator != "move").Select(c => $"{c.Actuator}({c.Argument})"));
            yield return Frame(s.T, $"{note} reward {s.Reward:+0;-0}", s.Board, calls.Length > 0 ? calls : null);
        }
    }

    private static string Frame(int t, string caption, string[] board, string? calls)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"t={t}  {caption}");
        foreach (var row in board) sb.AppendLine("  " + row);
        if (calls is not null) sb.AppendLine($"  actuators: {calls}");
        return sb.ToString();
    }

    private static string Colour(char c) => c switch
    {
        '#' => "#555", 'A' => "#1f77b4", 'P' => "#d62728", 'I' => "#ff7f0e", 'G' => "#2ca02c", 'B' => "#9467bd", 'S' => "#8c564b", _ => "#f4f4f4",
    };

    /// <summary>One board as a small self-contained SVG (no external assets).</summary>
    public static string SvgFrame(string[] board, string caption, int cell = 24)
    {
        int h = board.Length, w = board[0].Length;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w * cell}\" height=\"{h * cell + 20}\" viewBox=\"0 0 {w * cell} {h * cell + 20}\">");
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                char ch = board[r][c];
                sb.Append($"<rect x=\"{c * cell}\" y=\"{r * cell}\" width=\"{cell}\" height=\"{cell}\" fill=\"{Colour(ch)}\" stroke=\"#ccc\"/>");
                if (ch is not ('#' or ' '))
                    sb.Append($"<text x=\"{c * cell + cell / 2}\" y=\"{r * cell + cell * 0.7}\" font-size=\"{cell * 0.6}\" text-anchor=\"middle\" fill=\"#fff\">{ch}</text>");
            }
        sb.Append($"<text x=\"2\" y=\"{h * cell + 15}\" font-size=\"12\">{System.Security.SecurityElement.Escape(caption)}</text></svg>");
        return sb.ToString();
    }
}
