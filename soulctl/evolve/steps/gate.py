"""The anchor check: the new generation measured against the golden anchor with the limits of
recipes/anchor.yaml; one past them is rejected (kept and marked, or removed)."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, Stop, step


@step("check")
class Check:
    weights = True  # loads the new generation to measure it

    def plan(self, cycle: Cycle) -> dict:
        limits = cycle.soul.recipe("anchor")
        return {"max_drift": limits.max_drift, "max_probe_loss_delta": limits.max_probe_loss_delta}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve.anchor import gate

        report, failures = gate(cycle.soul, cycle.generation)
        cycle.report = report
        record = {"drift": report["drift"], "probe_loss": report["probe_loss"],
                  "probe_loss_delta": report["probe_loss_delta"], "absorption": report["absorption"],
                  "held_out_absorption": report["held_out_absorption"],
                  "failures": failures}
        if failures:
            record.update(reject(cycle, failures))
            raise Stop("rejected", "; ".join(failures), record)
        return record


def reject(cycle: Cycle, failures: list[str]) -> dict:
    """Keep the generation marked rejected (generations/rejected/<id>.json), or remove it."""
    import shutil

    from soulctl.evolve.cycle import mark_rejected
    from soulctl.generations.files import make_writable

    home, gid = cycle.soul.home, cycle.generation
    if cycle.remove_rejected:
        make_writable(home.generations / gid)
        shutil.rmtree(home.generations / gid)
        return {"removed": True}
    mark_rejected(home, gid, {"id": gid, "parent": cycle.parent, "failures": failures,
                              "drift": cycle.report["drift"],
                              "probe_loss_delta": cycle.report["probe_loss_delta"]})
    return {}
