using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gate.Core.IO;

/// <summary>
/// The JSON options of every file Gate writes and reads back — decision.json, the sandbox job protocol, attestation
/// predicates — so that a result round-trips unchanged: camelCase names, enums as camelCase strings, named floats
/// (NaN, Infinity), no escaping of non-ASCII text. <see cref="Compact"/> is the same on one line.
/// </summary>
public static class GateJson
{
    public static JsonSerializerOptions Options { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new CamelCaseEnumsUnlessDeclared() },
    };

    public static JsonSerializerOptions Compact { get; } = new(Options) { WriteIndented = false };

    /// <summary>
    /// Enums as camelCase strings, except an enum that declares a converter of its own (a <c>JsonConverter&lt;T&gt;</c>
    /// for exactly that type, e.g. isolation levels, written "process-netns"): a converter in the options would
    /// otherwise win over the type's attribute. An attribute naming the generic string-enum converter stays camelCase.
    /// </summary>
    private sealed class CamelCaseEnumsUnlessDeclared : JsonConverterFactory
    {
        private readonly JsonStringEnumConverter _camelCase = new(JsonNamingPolicy.CamelCase);

        public override bool CanConvert(Type typeToConvert) =>
            _camelCase.CanConvert(typeToConvert) && !HasOwnConverter(typeToConvert);

        private static bool HasOwnConverter(Type type) =>
            type.GetCustomAttributes(typeof(JsonConverterAttribute), inherit: false) is [JsonConverterAttribute { ConverterType: { } c }, ..]
            && typeof(JsonConverter<>).MakeGenericType(type).IsAssignableFrom(c);

        public override JsonConverter? CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
            _camelCase.CreateConverter(typeToConvert, options);
    }
}
