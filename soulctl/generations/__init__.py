"""Generations (DESIGN §4, §6): immutable model directories with their lineage.

refs.py (ids, references, `current`), lineage.py (the Lineage record), files.py (hashes and
modes), integrity.py (the sealed chain back to generation 0), build.py (build), verify.py
(verify, seal), history.py (diff, gc, materialize), base.py (generation 0 from the base model),
derived.py (caches derived from a generation, such as its GGUF).
"""

from soulctl.generations.build import (
                                       DROPPED_DIR,
                                       VERIFIED_DIR,
                                       build_generation,
                                       clean_stale_builds,
                                       dropped_files,
                                       mark_dropped,
                                       summary,
)
from soulctl.generations.files import make_read_only, make_writable, manifest, sha256_file, tree_files
from soulctl.generations.lineage import LINEAGE, Lineage, read_lineage
from soulctl.generations.refs import (
                                       CURRENT,
                                       GEN_ID,
                                       TMP_PREFIX,
                                       current,
                                       gen_id,
                                       gen_number,
                                       generation_ids,
                                       next_id,
                                       now_iso,
                                       resolve,
                                       set_current,
)
from soulctl.generations.verify import Verification, verify, verify_cached

__all__ = ["CURRENT", "DROPPED_DIR", "GEN_ID", "LINEAGE", "Lineage", "TMP_PREFIX", "VERIFIED_DIR",
           "Verification", "build_generation", "clean_stale_builds", "current", "dropped_files",
           "gen_id", "gen_number", "generation_ids", "make_read_only", "make_writable", "manifest", "mark_dropped",
           "next_id", "now_iso", "read_lineage", "resolve", "set_current", "sha256_file", "summary",
           "tree_files", "verify", "verify_cached"]
