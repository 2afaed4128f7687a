using System.Text.Json.Nodes;

namespace Block.Qmp.Commands;

/// <summary>
/// Runs one QMP command: takes its (validated) arguments and returns the value of its <c>return</c> member
/// (an empty object for commands that return nothing).
/// </summary>
/// <param name="context">Who is asking, and the graph to act on.</param>
/// <param name="arguments">The <c>arguments</c> member (an empty object when absent).</param>
/// <param name="cancellationToken">Cancelled when the server stops.</param>
public delegate ValueTask<JsonNode?> QmpCommandHandler(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken);
