using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sputnik.Server.Api;

namespace Sputnik.Server.Storage;

/// <summary>
/// Chat history for the web app in SQLite (WAL, synchronous=FULL so a completed message survives kill -9).
/// One connection, serialized by a lock: the web app's traffic is a handful of small writes.
/// </summary>
public sealed class ConversationStore : IDisposable
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();

    private ConversationStore(SqliteConnection db) => _db = db;

    public static ConversationStore Open(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDir, "chats.db"), Pooling = false }.ToString());
        db.Open();
        Exec(db, """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            PRAGMA foreign_keys=ON;
            CREATE TABLE IF NOT EXISTS conversations (
                id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                role TEXT NOT NULL, content TEXT NOT NULL, reasoning_content TEXT, meta TEXT, created_at INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
            """);
        return new ConversationStore(db);
    }

    public List<ConversationDto> List()
    {
        lock (_lock)
        {
            using var cmd = Cmd("SELECT id, title, created_at, updated_at FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT 500");
            using var r = cmd.ExecuteReader();
            var list = new List<ConversationDto>();
            while (r.Read()) list.Add(new ConversationDto(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)));
            return list;
        }
    }

    public ConversationDto Create(string? title)
    {
        long now = Now();
        var c = new ConversationDto(Guid.NewGuid().ToString("N")[..16], string.IsNullOrWhiteSpace(title) ? "New chat" : Clip(title, 200), now, now, []);
        lock (_lock)
        {
            using var cmd = Cmd("INSERT INTO conversations(id, title, created_at, updated_at) VALUES ($id, $t, $c, $u)",
                ("$id", c.Id), ("$t", c.Title), ("$c", now), ("$u", now));
            cmd.ExecuteNonQuery();
        }
        return c;
    }

    public ConversationDto? Get(string id)
    {
        lock (_lock)
        {
            ConversationDto? c;
            using (var cmd = Cmd("SELECT id, title, created_at, updated_at FROM conversations WHERE id = $id", ("$id", id)))
            using (var r = cmd.ExecuteReader())
            {
                if (!r.Read()) return null;
                c = new ConversationDto(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
            }
            var messages = new List<MessageDto>();
            using (var cmd = Cmd("SELECT id, role, content, reasoning_content, meta, created_at FROM messages WHERE conversation_id = $id ORDER BY id", ("$id", id)))
            using (var r = cmd.ExecuteReader())
            {
                while (r.Read())
                {
                    JsonElement? meta = r.IsDBNull(4) ? null : JsonDocument.Parse(r.GetString(4)).RootElement;
                    messages.Add(new MessageDto(r.GetInt64(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), meta, r.GetInt64(5)));
                }
            }
            return c with { Messages = messages };
        }
    }

    public bool Rename(string id, string title)
    {
        lock (_lock)
        {
            using var cmd = Cmd("UPDATE conversations SET title = $t, updated_at = $u WHERE id = $id", ("$id", id), ("$t", Clip(title, 200)), ("$u", Now()));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    public bool Delete(string id)
    {
        lock (_lock)
        {
            using var cmd = Cmd("DELETE FROM conversations WHERE id = $id", ("$id", id));
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    /// <summary>Appends a message; null when the conversation does not exist.</summary>
    public MessageDto? Append(string conversationId, string role, string content, string? reasoning, JsonElement? meta)
    {
        long now = Now();
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            using var touch = Cmd("UPDATE conversations SET updated_at = $u WHERE id = $id", ("$id", conversationId), ("$u", now));
            touch.Transaction = tx;
            if (touch.ExecuteNonQuery() == 0) return null;
            using var ins = Cmd("INSERT INTO messages(conversation_id, role, content, reasoning_content, meta, created_at) VALUES ($c, $r, $t, $x, $m, $n) RETURNING id",
                ("$c", conversationId), ("$r", role), ("$t", content), ("$x", reasoning), ("$m", meta?.GetRawText()), ("$n", now));
            ins.Transaction = tx;
            long id = (long)ins.ExecuteScalar()!;
            tx.Commit();
            return new MessageDto(id, role, content, reasoning, meta, now);
        }
    }

    /// <summary>Deletes one message and every later one of its conversation (regenerate / edit).</summary>
    public int Truncate(string conversationId, long fromMessageId)
    {
        lock (_lock)
        {
            using var cmd = Cmd("DELETE FROM messages WHERE conversation_id = $c AND id >= $m", ("$c", conversationId), ("$m", fromMessageId));
            return cmd.ExecuteNonQuery();
        }
    }

    private SqliteCommand Cmd(string sql, params (string Name, object? Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v ?? DBNull.Value);
        return cmd;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static string Clip(string s, int n) => s.Length <= n ? s : s[..n];

    public void Dispose() => _db.Dispose();
}
