using Block.Graph;

namespace Block.Qmp.Commands;

/// <summary>What a command handler sees: the server, its graph, and the session the command came from.</summary>
public sealed class QmpCommandContext
{
    internal QmpCommandContext(QmpServer server, QmpSession? session)
    {
        Server = server;
        Session = session;
    }

    /// <summary>The server the command runs in.</summary>
    public QmpServer Server { get; }

    /// <summary>The graph commands act on.</summary>
    public BlockGraph Graph => Server.Graph;

    /// <summary>
    /// Runs <paramref name="action"/> once the command's reply is queued for its client (at once without a session):
    /// <c>quit</c> stops the server only after its reply is on its way.
    /// </summary>
    public void AfterReply(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (Session is { } session)
            session.RunAfterReply(action);
        else
            action();
    }

    /// <summary>The session that sent the command, or null when code calls <see cref="QmpServer.ExecuteAsync(string, System.Text.Json.Nodes.JsonObject?, CancellationToken)"/> directly.</summary>
    public QmpSession? Session { get; }
}
