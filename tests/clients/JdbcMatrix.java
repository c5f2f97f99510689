// Owns the pgjdbc side of the client matrix: one single-file program, run as
//   java -cp /usr/share/java/postgresql.jar tests/clients/JdbcMatrix.java --host H --port P
//        --user U --password PW --dbname D [--mode session|transaction|split] [--only a,b]
// printing `ok jdbc.NAME (0.12s)` / `FAIL jdbc.NAME: reason` per case; exit 1 if any failed.
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.postgresql.PGStatement;

public class JdbcMatrix {
    static Map<String, String> opt = new HashMap<>();

    interface Body {
        void run(Ctx c) throws Exception;
    }

    record Case(String name, boolean sessionOnly, Body body) {}

    /** Per-case state: the connections it opened (aborted on timeout) and its tables. */
    static class Ctx {
        final String name;
        final List<Connection> conns = Collections.synchronizedList(new ArrayList<>());
        final List<String> tables = new ArrayList<>();

        Ctx(String name) {
            this.name = name;
        }

        boolean session() {
            return opt.get("mode").equals("session");
        }

        boolean split() {
            return opt.get("mode").equals("split");
        }

        Connection connect(String... props) throws SQLException {
            Properties p = new Properties();
            p.setProperty("user", opt.get("user"));
            p.setProperty("password", opt.get("password"));
            p.setProperty("ApplicationName", "client-matrix-jdbc");
            p.setProperty("connectTimeout", "10");
            p.setProperty("loginTimeout", "10");
            p.setProperty("socketTimeout", String.valueOf(Integer.parseInt(opt.get("timeout")) + 10));
            for (String kv : props) {
                String[] parts = kv.split("=", 2);
                p.setProperty(parts[0], parts[1]);
            }
            String url = "jdbc:postgresql://" + opt.get("host") + ":" + opt.get("port") + "/" + opt.get("dbname");
            Connection c = DriverManager.getConnection(url, p);
            conns.add(c);
            return c;
        }

        String table(String tag) {
            String base = name.replaceAll("[^a-z0-9]+", "_");
            String t = ("cm_" + base + "_" + tag + "_" + opt.get("run-id"));
            if (t.length() > 63) t = t.substring(0, 63);
            if (!tables.contains(t)) tables.add(t);
            return t;
        }

        /** DDL through the endpoint; in split mode wait until the replica has the tables. */
        void setup(String... sql) throws Exception {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                for (String s : sql) st.execute(s);
                if (!split()) return;
                long deadline = System.nanoTime() + 15_000_000_000L;
                for (String t : tables) {
                    while (true) {
                        try (ResultSet rs = st.executeQuery("/* pooler: replica */ SELECT to_regclass('" + t + "') IS NOT NULL")) {
                            rs.next();
                            if (rs.getBoolean(1)) break;
                        }
                        if (System.nanoTime() > deadline) throw new AssertionError(t + " not visible on the replica");
                        Thread.sleep(50);
                    }
                }
            }
        }

        /** Pins a cross-connection verification read to the primary in split mode. */
        String primary(String sql) {
            return split() ? "/* pooler: primary */ " + sql : sql;
        }

        void abortAll() {
            synchronized (conns) {
                for (Connection c : conns) {
                    try {
                        c.abort(Runnable::run);
                    } catch (Exception ignored) {
                    }
                }
            }
        }

        void cleanup() throws SQLException {
            synchronized (conns) {
                for (Connection c : conns) {
                    try {
                        c.close();
                    } catch (Exception ignored) {
                    }
                }
                conns.clear();
            }
            if (tables.isEmpty()) return;
            try (Connection c = connect(); Statement st = c.createStatement()) {
                for (String t : tables) st.execute("DROP TABLE IF EXISTS " + t + " CASCADE");
            }
        }
    }

    static void eq(Object actual, Object expected, String what) {
        if (!Objects.equals(actual, expected)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
        }
    }

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static Object scalar(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) ps.setObject(i + 1, params[i]);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "a row from " + sql);
                return rs.getObject(1);
            }
        }
    }

    static long count(Connection c, String sql, Object... params) throws SQLException {
        return ((Number) scalar(c, sql, params)).longValue();
    }

    static String sqlState(Body body) throws Exception {
        try {
            body.run(null);
        } catch (SQLException e) {
            return e.getSQLState();
        }
        throw new AssertionError("no SQLException raised");
    }

    static long serverPrepared(Connection c) throws SQLException {
        return count(c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'S\\_%'");
    }

    // --- cases ---------------------------------------------------------------------------

    static void basic(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        try (Statement st = c.createStatement()) {
            try (ResultSet rs = st.executeQuery("SELECT 1, 'é✓'::text, 2.5::numeric, NULL::int, true")) {
                check(rs.next(), "row");
                eq(rs.getInt(1), 1, "int");
                eq(rs.getString(2), "é✓", "unicode text");
                eq(rs.getBigDecimal(3), new java.math.BigDecimal("2.5"), "numeric");
                rs.getInt(4);
                eq(rs.wasNull(), true, "null");
                eq(rs.getBoolean(5), true, "bool");
            }
            check(st.execute("SELECT 1; SELECT 2"), "multi-statement result");
            try (ResultSet rs = st.getResultSet()) {
                rs.next();
                eq(rs.getInt(1), 1, "first result");
            }
            check(st.getMoreResults(), "second result");
            try (ResultSet rs = st.getResultSet()) {
                rs.next();
                eq(rs.getInt(1), 2, "second result");
            }
            long sum = 0, n = 0;
            try (ResultSet rs = st.executeQuery("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")) {
                while (rs.next()) {
                    sum += rs.getLong(1);
                    n++;
                }
            }
            eq(n, 20000L, "big result rows");
            eq(sum, 20000L * 20001 / 2, "big result sum");
        }
        eq(scalar(c, "SELECT ?::int + 1", 41), 42, "parameter");
        eq(scalar(c, "SELECT current_user"), opt.get("user"), "current_user");
    }

    /** Runs a prepared statement 20 times under `props`; returns isUseServerPrepare at the end. */
    static boolean preparedRuns(Ctx ctx, Connection c, String t) throws Exception {
        boolean server;
        try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?)");
                PreparedStatement sel = c.prepareStatement("SELECT name FROM " + t + " WHERE id = ?")) {
            for (int i = 0; i < 20; i++) {
                ins.setInt(1, i);
                ins.setString(2, "name " + i);
                eq(ins.executeUpdate(), 1, "insert count");
                sel.setInt(1, i);
                try (ResultSet rs = sel.executeQuery()) {
                    check(rs.next(), "row " + i);
                    eq(rs.getString(1), "name " + i, "prepared select");
                }
            }
            server = sel.unwrap(PGStatement.class).isUseServerPrepare();
        }
        if (ctx.session()) {
            long prepared = serverPrepared(c);
            check(server ? prepared > 0 : prepared == 0, "server-prepared statements on the server: " + prepared);
        }
        return server;
    }

    static void preparedDefault(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text)");
        Connection c = ctx.connect();
        eq(preparedRuns(ctx, c, t), true, "server-prepared after prepareThreshold (5) executions");
        // A failing execution of a server-prepared statement, then more runs.
        try (PreparedStatement div = c.prepareStatement("SELECT 100 / ?")) {
            for (int d : new int[] {1, 2, 4, 5, 10, 0, 20, 0, 25}) {
                div.setInt(1, d);
                try (ResultSet rs = div.executeQuery()) {
                    rs.next();
                    eq(rs.getInt(1), 100 / d, "division");
                } catch (SQLException e) {
                    eq(e.getSQLState(), "22012", "division by zero sqlstate");
                    eq(d, 0, "error only for 0");
                }
            }
        }
    }

    static void preparedThreshold1(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text)");
        Connection c = ctx.connect("prepareThreshold=1", "preparedStatementCacheQueries=50");
        eq(preparedRuns(ctx, c, t), true, "server-prepared from the first execution");
        // More distinct statements than the driver's cache: evicted ones are closed.
        for (int round = 0; round < 2; round++) {
            for (int k = 0; k < 120; k++) {
                eq(scalar(c, "SELECT ?::int + " + k, round), round + k, "statement " + k);
            }
        }
    }

    static void preparedThreshold0(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text)");
        Connection c = ctx.connect("prepareThreshold=0");
        eq(preparedRuns(ctx, c, t), false, "never server-prepared with prepareThreshold=0");
    }

    static void batch(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text, amount numeric)");
        for (String rewrite : new String[] {"false", "true"}) {
            int base = rewrite.equals("true") ? 10000 : 0;
            Connection c = ctx.connect("reWriteBatchedInserts=" + rewrite);
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?, ?)")) {
                for (int i = 0; i < 1000; i++) {
                    ps.setInt(1, base + i);
                    ps.setString(2, "row " + i);
                    ps.setBigDecimal(3, java.math.BigDecimal.valueOf(i, 2));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(counts.length, 1000, "batch counts");
                for (int n : counts) check(n == 1 || n == Statement.SUCCESS_NO_INFO, "batch count " + n);
            }
            c.commit();
            eq(count(c, "SELECT count(*) FROM " + t + " WHERE id >= ? AND id < ?", base, base + 1000), 1000L, "batch rows (rewrite=" + rewrite + ")");
            eq(scalar(c, "SELECT sum(amount) FROM " + t + " WHERE id >= ? AND id < ?", base, base + 1000), new java.math.BigDecimal("4995.00"), "batch sum");
            c.commit();
        }
        // A batch with a duplicate fails as a whole inside its transaction.
        Connection c = ctx.connect();
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, 'dup', 0)")) {
            for (int id : new int[] {50000, 50001, 5}) {
                ps.setInt(1, id);
                ps.addBatch();
            }
            ps.executeBatch();
            throw new AssertionError("duplicate in batch not reported");
        } catch (java.sql.BatchUpdateException e) {
            c.rollback();
        }
        eq(count(c, "SELECT count(*) FROM " + t + " WHERE id >= 50000"), 0L, "failed batch rolled back");
        c.commit();
    }

    static void fetchSize(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text)",
                "INSERT INTO " + t + " SELECT g, 'name ' || g FROM generate_series(1, 1000) g");
        Connection c = ctx.connect();
        c.setAutoCommit(false);
        try (PreparedStatement a = c.prepareStatement("SELECT id FROM " + t + " WHERE id > ? ORDER BY id");
                PreparedStatement b = c.prepareStatement("SELECT name FROM " + t + " ORDER BY id DESC")) {
            a.setFetchSize(10);
            b.setFetchSize(10);
            a.setInt(1, 0);
            long sum = 0, rows = 0;
            try (ResultSet ra = a.executeQuery(); ResultSet rb = b.executeQuery()) {
                // Two open portals fetched alternately, 10 rows per round trip.
                while (ra.next()) {
                    sum += ra.getInt(1);
                    check(rb.next(), "second cursor row");
                    eq(rb.getString(1), "name " + (1001 - ra.getInt(1)), "second cursor value");
                    rows++;
                }
                check(!rb.next(), "second cursor exhausted");
            }
            eq(rows, 1000L, "cursor rows");
            eq(sum, 1000L * 1001 / 2, "cursor sum");
        }
        c.commit();
    }

    static void transactions(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY)");
        Connection c = ctx.connect();
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO " + t + " VALUES (1)");
            c.commit();
            st.executeUpdate("INSERT INTO " + t + " VALUES (2)");
            c.rollback();
            st.executeUpdate("INSERT INTO " + t + " VALUES (3)");
            Savepoint sp = c.setSavepoint();
            st.executeUpdate("INSERT INTO " + t + " VALUES (4)");
            c.rollback(sp);
            st.executeUpdate("INSERT INTO " + t + " VALUES (5)");
            c.commit();
            if (ctx.session()) {
                // pgjdbc sends SET SESSION CHARACTERISTICS: a session setting that a
                // transaction pooler would leave on a shared server, so only here.
                c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
            } else {
                st.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
            }
            st.executeUpdate("INSERT INTO " + t + " VALUES (6)");
            eq(scalar(c, "SHOW transaction_isolation"), "serializable", "isolation level");
            c.commit();
        }
        Connection other = ctx.connect();
        List<Integer> ids = new ArrayList<>();
        try (Statement st = other.createStatement(); ResultSet rs = st.executeQuery(ctx.primary("SELECT id FROM " + t + " ORDER BY id"))) {
            while (rs.next()) ids.add(rs.getInt(1));
        }
        eq(ids, Arrays.asList(1, 3, 5, 6), "committed rows only");
    }

    static void errors(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY)");
        Connection c = ctx.connect();
        for (int i = 0; i < 3; i++) {
            eq(sqlState(x -> c.createStatement().execute("SELEC 1")), "42601", "syntax error sqlstate");
            eq(scalar(c, "SELECT ?::int", i), i, "query after syntax error");
        }
        c.createStatement().execute("INSERT INTO " + t + " VALUES (1)");
        for (int i = 0; i < 7; i++) {  // past prepareThreshold: the failing statement is server-prepared
            eq(sqlState(x -> {
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?)")) {
                    ps.setInt(1, 1);
                    ps.executeUpdate();
                }
            }), "23505", "unique violation sqlstate");
        }
        eq(count(c, "SELECT count(*) FROM " + t), 1L, "after unique violation");
        c.setAutoCommit(false);
        c.createStatement().execute("INSERT INTO " + t + " VALUES (2)");
        eq(sqlState(x -> c.createStatement().execute("INSERT INTO " + t + " VALUES (1)")), "23505", "error in transaction");
        eq(sqlState(x -> c.createStatement().execute("SELECT 1")), "25P02", "failed transaction");
        c.rollback();
        eq(count(c, "SELECT count(*) FROM " + t), 1L, "rolled back transaction");
        c.commit();
    }

    static void autosave(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, v int)", "INSERT INTO " + t + " VALUES (0, 0)");
        // autosave=always: a failed statement does not abort the transaction.
        Connection c = ctx.connect("autosave=always");
        c.setAutoCommit(false);
        c.createStatement().execute("INSERT INTO " + t + " VALUES (1, 1)");
        eq(sqlState(x -> c.createStatement().execute("INSERT INTO " + t + " VALUES (0, 0)")), "23505", "duplicate");
        c.createStatement().execute("INSERT INTO " + t + " VALUES (2, 2)");
        c.commit();
        eq(count(c, "SELECT count(*) FROM " + t), 3L, "rows around the failed statement committed");
        c.commit();
    }

    static void schemaChange(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, v int)", "INSERT INTO " + t + " VALUES (1, 1)");
        // autosave=conservative: a server-prepared SELECT * survives ALTER TABLE inside a
        // transaction ("cached plan must not change result type" is retried).
        Connection d = ctx.connect("autosave=conservative");
        d.setAutoCommit(false);
        try (PreparedStatement ps = d.prepareStatement("SELECT * FROM " + t + " WHERE id = ?")) {
            for (int i = 0; i < 7; i++) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    eq(rs.getMetaData().getColumnCount(), 2, "columns before ALTER");
                }
            }
            d.createStatement().execute("ALTER TABLE " + t + " ADD COLUMN extra int DEFAULT 9");
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "row after ALTER");
                eq(rs.getMetaData().getColumnCount(), 3, "columns after ALTER");
                eq(rs.getInt(3), 9, "new column value");
            }
        }
        d.commit();
    }

    static void concurrent(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (worker int, i int, PRIMARY KEY (worker, i))");
        ExecutorService pool = Executors.newFixedThreadPool(8, r -> {
            Thread th = new Thread(r);
            th.setDaemon(true);
            return th;
        });
        List<Future<?>> futures = new ArrayList<>();
        for (int w = 0; w < 8; w++) {
            final int worker = w;
            futures.add(pool.submit(() -> {
                Connection c = ctx.connect();
                c.setAutoCommit(false);
                try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?)")) {
                    for (int i = 0; i < 50; i++) {
                        ins.setInt(1, worker);
                        ins.setInt(2, i);
                        ins.executeUpdate();
                        eq(count(c, "SELECT count(*) FROM " + t + " WHERE worker = ?", worker), (long) i + 1, "own rows");
                        c.commit();
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : futures) f.get();
        pool.shutdown();
        Connection c = ctx.connect();
        eq(count(c, ctx.primary("SELECT count(*) FROM " + t)), 400L, "rows of all workers");
    }

    static void metadata(Ctx ctx) throws Exception {
        String t = ctx.table("t");
        ctx.setup("CREATE TABLE " + t + " (id int PRIMARY KEY, name text NOT NULL)");
        Connection c = ctx.connect();
        DatabaseMetaData md = c.getMetaData();
        check(md.getDatabaseProductVersion().length() > 0, "server version");
        try (ResultSet rs = md.getTables(null, null, t, new String[] {"TABLE"})) {
            check(rs.next(), "table listed");
            eq(rs.getString("TABLE_NAME"), t, "table name");
        }
        List<String> cols = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, null, t, null)) {
            while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
        }
        eq(cols, Arrays.asList("id:int4", "name:text"), "columns");
        try (ResultSet rs = md.getPrimaryKeys(null, null, t)) {
            check(rs.next(), "primary key");
            eq(rs.getString("COLUMN_NAME"), "id", "primary key column");
        }
    }

    static void sessionState(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        try (Statement st = c.createStatement()) {
            st.execute("CREATE TEMP TABLE cm_temp (v int)");
            st.execute("INSERT INTO cm_temp VALUES (1), (2)");
            st.execute("SET cm.custom = 'kept'");
        }
        eq(count(c, "SELECT sum(v) FROM cm_temp"), 3L, "temp table kept");
        eq(scalar(c, "SELECT current_setting('cm.custom')"), "kept", "custom setting kept");
    }

    // --- runner --------------------------------------------------------------------------

    static List<Case> cases() {
        return List.of(
                new Case("jdbc.basic", false, JdbcMatrix::basic),
                new Case("jdbc.prepared_default", false, JdbcMatrix::preparedDefault),
                new Case("jdbc.prepared_threshold_1", false, JdbcMatrix::preparedThreshold1),
                new Case("jdbc.prepared_threshold_0", false, JdbcMatrix::preparedThreshold0),
                new Case("jdbc.batch", false, JdbcMatrix::batch),
                new Case("jdbc.fetch_size", false, JdbcMatrix::fetchSize),
                new Case("jdbc.transactions", false, JdbcMatrix::transactions),
                new Case("jdbc.errors", false, JdbcMatrix::errors),
                new Case("jdbc.autosave", false, JdbcMatrix::autosave),
                new Case("jdbc.schema_change", false, JdbcMatrix::schemaChange),
                new Case("jdbc.concurrent", false, JdbcMatrix::concurrent),
                new Case("jdbc.metadata", false, JdbcMatrix::metadata),
                new Case("jdbc.session_state", true, JdbcMatrix::sessionState),
                // Only when named in --only: proves a hang ends as a FAIL by timeout.
                new Case("jdbc.selftest_hang", false, c -> c.connect().createStatement().execute("SELECT pg_sleep(60)")));
    }

    static String reason(Throwable e) {
        String msg = String.valueOf(e.getMessage()).replace('\n', ' ');
        if (msg.length() > 400) msg = msg.substring(0, 400);
        return e.getClass().getSimpleName() + ": " + msg;
    }

    public static void main(String[] args) throws Exception {
        opt.put("host", "127.0.0.1");
        opt.put("port", "5432");
        opt.put("user", "postgres");
        opt.put("password", "");
        opt.put("dbname", "postgres");
        opt.put("mode", "session");
        opt.put("timeout", "20");
        opt.put("only", "");
        opt.put("run-id", String.valueOf(ProcessHandle.current().pid()));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--") || !opt.containsKey(args[i].substring(2))) {
                System.err.println("unknown option " + args[i]);
                System.exit(2);
            }
            opt.put(args[i].substring(2), args[i + 1]);
        }
        List<String> only = opt.get("only").isEmpty() ? List.of() : Arrays.asList(opt.get("only").split(","));
        int timeout = Integer.parseInt(opt.get("timeout"));
        int passed = 0, failed = 0, skipped = 0;
        for (Case k : cases()) {
            if (only.isEmpty() ? k.name().startsWith("jdbc.selftest") : !only.contains(k.name())) continue;
            if (k.sessionOnly() && !opt.get("mode").equals("session")) {
                System.out.println("SKIP " + k.name() + ": session mode only");
                skipped++;
                continue;
            }
            Ctx ctx = new Ctx(k.name());
            ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
                Thread th = new Thread(r, k.name());
                th.setDaemon(true);
                return th;
            });
            long start = System.nanoTime();
            String failure = null;
            Future<?> f = ex.submit(() -> {
                k.body().run(ctx);
                return null;
            });
            try {
                f.get(timeout, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                failure = "timed out after " + timeout + "s (hung; connections aborted)";
                ctx.abortAll();
                f.cancel(true);
            } catch (ExecutionException e) {
                failure = reason(e.getCause());
                for (StackTraceElement el : e.getCause().getStackTrace()) {
                    if (el.getClassName().startsWith("JdbcMatrix")) System.out.println("    at " + el);
                }
            }
            ex.shutdownNow();
            try {
                ctx.cleanup();
            } catch (Exception e) {
                if (failure == null) failure = "dropping tables: " + reason(e);
            }
            double secs = (System.nanoTime() - start) / 1e9;
            if (failure == null) {
                passed++;
                System.out.printf("ok %s (%.2fs)%n", k.name(), secs);
            } else {
                failed++;
                System.out.printf("FAIL %s: %s (%.2fs)%n", k.name(), failure, secs);
            }
            System.out.flush();
        }
        System.out.printf("jdbc: %d passed, %d failed, %d skipped%n", passed, failed, skipped);
        System.exit(failed > 0 ? 1 : 0);
    }
}
