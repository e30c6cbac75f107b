"""Rows of the packets table in DuckDB: filters as SQL, inserts (parameters or one Arrow
table), and reads of whole packets by seq."""

from __future__ import annotations

import warnings

import numpy as np

from soulctl.log.filters import Dialect
from soulctl.log.filters import where_clause as filters_sql
from soulctl.log.packets import Filters, Packet
from soulctl.log.duckdb.schema import MARK_RANK
from soulctl.log.rows import COLUMNS, SELECT, naive_utc, packet_from_row


DIALECT = Dialect("?", "json_extract_string(meta, '$.speaker')")


def where_clause(filters: Filters | None) -> tuple[str, list]:
    """Filters as SQL conditions in DuckDB's dialect (log/filters.py writes them)."""
    return filters_sql(filters, DIALECT)


def neighbours(con, seqs: list[int], filters: Filters, steps) -> dict[int, list[int]]:
    """Each seq's neighbours at `steps` (seq + 1, seq − 1 …) in the same session that pass the
    filters (the context ranking of hybrid search)."""
    if not seqs:
        return {}
    wanted = {n for seq in seqs for n in (seq + d for d in steps) if n > 0}
    where, params = where_clause(filters)
    table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
    listed = ", ".join(str(int(n)) for n in wanted)
    hits = ", ".join(str(int(seq)) for seq in seqs)
    session = dict(con.execute(f"SELECT seq, session FROM {table} WHERE (seq IN ({listed}) {where}) "
                               f"OR seq IN ({hits})", params).fetchall())
    return {seq: [n for n in (seq + d for d in steps) if n in session and session[n] == session.get(seq)]
            for seq in seqs}


def fetch_by_seq(con, seqs: list[int]) -> dict[int, Packet]:
    """Whole packets by seq, with their current resonance (the newest mark, else their own).

    The seqs are integers written into the query: a literal IN list lets DuckDB skip row
    groups by their min/max, where a parameter list would scan the column."""
    if not seqs:
        return {}
    listed = ", ".join(str(int(s)) for s in seqs)
    rows = con.execute(f"SELECT {SELECT} FROM packets WHERE seq IN ({listed})").fetchall()
    if not rows:
        return {}
    marks = dict(con.execute(
        f"SELECT packet_id, (arg_max(score, {MARK_RANK}), arg_max(source, {MARK_RANK})) FROM resonance_marks "
        "WHERE source IN ('mark', 'combined', 'import') AND packet_id IN (SELECT unnest(?)) "
        "GROUP BY packet_id", [[r[0] for r in rows]]).fetchall())
    at = COLUMNS.index("resonance")
    packets = {}
    for row in rows:
        if (mark := marks.get(row[0])) is not None:
            row = row[:at] + tuple(mark) + row[at + 2:]  # (score, source)
        packet = packet_from_row(row)
        packets[packet.seq] = packet
    return packets


def vectors_from(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    seqs = np.asarray(arrays["seq"], dtype=np.int64)
    emb = arrays["embedding"]
    if len(emb) == 0:
        return seqs, np.zeros((0, 0), dtype=np.float32)
    return seqs, np.stack(emb).astype(np.float32)


def fixed_array(vectors: np.ndarray, dim: int):
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim)


INSERT_COLUMNS = ("seq", "id", "ts", "session", "role", "prose", "embedding", "embed_model",
                   "generation", "corpus", "resonance", "resonance_source", "parent", "corrects", "meta")
SMALL_INSERT = 16  # rows bound as parameters; more go through one Arrow table


def insert_rows(con, rows: list[dict], dim: int) -> None:
    insert = f"INSERT INTO packets ({', '.join(INSERT_COLUMNS)}) "
    if len(rows) <= SMALL_INSERT:  # a chat turn: building an Arrow table would cost more
        one = "(" + ", ".join(f"?::FLOAT[{dim}]" if c == "embedding" else "?::JSON" if c == "meta" else "?"
                              for c in INSERT_COLUMNS) + ")"
        params = [r[c].tolist() if c == "embedding" else r[c] for r in rows for c in INSERT_COLUMNS]
        con.execute(insert + "VALUES " + ", ".join([one] * len(rows)), params)
        return
    import pyarrow as pa

    cols = [c for c in rows[0] if c != "embedding"]
    data = {c: [r[c] for r in rows] for c in cols}
    table = pa.table({**{c: pa.array(v) if c != "ts" else pa.array(v, pa.timestamp("us"))
                         for c, v in data.items()},
                      "embedding": fixed_array(np.stack([r["embedding"] for r in rows]), dim)})
    con.register("incoming", table)
    try:
        con.execute(insert + "SELECT " + ", ".join(
            f"embedding::FLOAT[{dim}]" if c == "embedding" else "meta::JSON" if c == "meta" else c
            for c in INSERT_COLUMNS) + " FROM incoming")
    finally:
        con.unregister("incoming")


VECTOR_CHUNK = 16_384  # vectors read from the database at once when the index is extended


def arrow(con, sql: str, params: list):
    """A query's rows as an Arrow table: embeddings as fixed-size lists of floats, not a
    Python object per number (the whole log's vectors in one read: resonance, buffers)."""
    with warnings.catch_warnings():  # "an extra copy of the rows": the caller wants them all
        warnings.simplefilter("ignore", UserWarning)
        return con.execute(sql, params).to_arrow_table()


def matrix(column, rows: int) -> np.ndarray:
    """An Arrow column of embeddings as one float32 matrix of `rows` rows."""
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(rows, -1)


def vector_chunks(con, after: int, upto: int):
    """A pass over the vectors of packets after..upto, VECTOR_CHUNK seqs at a time (a range,
    so no query holds more than a chunk), each time it is called."""
    def chunks():
        for lo in range(after, upto, VECTOR_CHUNK):
            table = arrow(con, "SELECT seq, embedding FROM packets WHERE seq > ? AND seq <= ? ORDER BY seq",
                          [lo, min(lo + VECTOR_CHUNK, upto)])  # one chunk's copy, not the log's
            if table.num_rows:
                yield table.column("seq").to_numpy(), matrix(table.column("embedding"), table.num_rows)
    return chunks
