"""The engine through its library API: no-op, order, concurrency, finalize, replace, plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run
from things import Thing, UniqueThing

import alchemy_nb
from alchemy_nb.errors import (
    ConfigError,
    DeployError,
    PlanError,
    ProgramError,
    StateError,
)


def make_app(tmp_path: Path, name: str = "demo", **kw: object) -> alchemy_nb.App:
    return alchemy_nb.App(name, root=tmp_path, **kw)  # type: ignore[arg-type]


def test_unchanged_resources_make_zero_provider_calls(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        for i in range(20):
            Thing(f"t{i}", value=f"v{i}")

    first = run(app.deploy("dev"))
    assert first.counts["create"] == 20
    assert len(journal.calls) == 20
    journal.calls.clear()
    second = run(app.deploy("dev"))
    assert second.counts == {"create": 0, "update": 0, "replace": 0, "delete": 0, "noop": 20}
    assert journal.calls == []


def test_key_order_and_defaults_do_not_change_the_digest(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    order = {"flip": False}

    @app.program
    def infra(stage):
        settings = {"a": "1", "b": "2"}
        if order["flip"]:
            settings = {"b": "2", "a": "1"}
            Thing("t", settings=settings, value="x", tag="a")  # tag given = its default
        else:
            Thing("t", value="x", settings=settings)

    run(app.deploy("dev"))
    order["flip"] = True
    journal.calls.clear()
    assert run(app.deploy("dev")).counts["noop"] == 1
    assert journal.calls == []


def test_changed_props_update_with_field_level_diff(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    value = {"v": "one"}

    @app.program
    def infra(stage):
        Thing(
            "t",
            value=value["v"],
            settings={"A": "1", "B": "2"} if value["v"] == "one" else {"A": "1", "B": "3"},
        )

    run(app.deploy("dev"))
    value["v"] = "two"
    plan = run(app.plan("dev"))
    (change,) = plan.changes
    assert change.action == "update"
    assert {(f.path, f.before, f.after) for f in change.fields} == {
        ("value", "one", "two"),
        ("settings.B", "2", "3"),
    }
    journal.calls.clear()
    result = run(app.deploy("dev"))
    assert result.counts["update"] == 1
    assert journal.calls == [("update", "t", "two")]


def test_dependencies_apply_in_order_and_outputs_resolve(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        a = Thing("a", value="root", sleep=0.05)
        b = Thing("b", value=a.name)
        c = Thing("c", value=b.value, settings={"from_a": a.value})
        return {"c": c.value, "a_name": a.name}

    result = run(app.deploy("dev"))
    assert journal.ops("create") == ["a", "b", "c"]
    assert result.outputs == {"c": "demo-a-dev", "a_name": "demo-a-dev"}
    state = json.loads((tmp_path / ".alchemy/demo/dev/state.json").read_text())
    assert state["resources"]["c"]["deps"] == ["b", "a"]
    assert state["resources"]["c"]["props"]["settings"] == {"from_a": "root"}


def test_dependents_update_when_a_dependency_output_changes(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    value = {"v": "one"}

    @app.program
    def infra(stage):
        a = Thing("a", value=value["v"])
        Thing("b", value=a.value)
        Thing("c", value="independent")

    run(app.deploy("dev"))
    value["v"] = "two"
    plan = run(app.plan("dev"))
    actions = {c.id: c.action for c in plan.changes}
    assert actions == {"a": "update", "b": "update", "c": "noop"}
    assert [f.after for f in plan.changes[1].fields] == ["(known after apply)"]
    journal.calls.clear()
    run(app.deploy("dev"))
    assert journal.calls == [("update", "a", "two"), ("update", "b", "two")]


def test_concurrency_is_bounded(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path, concurrency=4)

    @app.program
    def infra(stage):
        for i in range(24):
            Thing(f"t{i}", sleep=0.02)

    run(app.deploy("dev"))
    assert journal.max_active == 4
    journal.max_active = 0
    run(app.destroy("dev", concurrency=3))
    assert journal.max_active == 3


def test_default_concurrency_is_at_least_16(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        for i in range(40):
            Thing(f"t{i}", sleep=0.05)

    run(app.deploy("dev"))
    assert journal.max_active >= 16


def test_finalize_deletes_orphans_after_a_complete_run(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    keep = {"n": 3}

    @app.program
    def infra(stage):
        previous = None
        for i in range(keep["n"]):
            previous = Thing(f"t{i}", value=previous.name if previous else "first")

    run(app.deploy("dev"))
    keep["n"] = 1
    journal.calls.clear()
    result = run(app.deploy("dev"))
    assert result.counts["delete"] == 2
    assert journal.ops("delete") == ["t2", "t1"]  # dependents first
    status = run(app.status("dev"))
    assert [r["id"] for r in status.resources] == ["t0"]


def test_failed_run_skips_finalize_and_dependents(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    shape = {"v": 1}

    @app.program
    def infra(stage):
        if shape["v"] == 1:
            Thing("old")
        a = Thing("a", value=f"v{shape['v']}")
        Thing("b", value=a.value)
        Thing("c", value=f"c{shape['v']}")

    run(app.deploy("dev"))
    shape["v"] = 2
    journal.fail_on.add("update:a")
    journal.calls.clear()
    with pytest.raises(DeployError) as info:
        run(app.deploy("dev"))
    err = info.value
    assert set(err.failures) == {"a", "b"}
    assert "update failed: RuntimeError: update of a failed on purpose" in str(err)
    assert "demo/dev" in str(err) and "phase up" in str(err)
    assert "skipped: dependency a failed" in str(err.failures["b"])
    assert journal.ops("delete") == []  # the orphan survives a failed run
    assert journal.ops("update") == ["a", "c"]
    # the failure is fixed: the next run finishes the work, then finalizes
    journal.fail_on.clear()
    journal.calls.clear()
    result = run(app.deploy("dev"))
    assert sorted(journal.ops("update")) == ["a", "b"]
    assert journal.ops("delete") == ["old"]
    assert result.ok


def test_replace_creates_before_deleting(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    tag = {"t": "a"}

    @app.program
    def infra(stage):
        Thing("t", value="x", tag=tag["t"])

    run(app.deploy("dev"))
    tag["t"] = "b"
    plan = run(app.plan("dev"))
    assert plan.changes[0].action == "replace"
    assert plan.changes[0].fields[0].forces_replacement
    journal.calls.clear()
    result = run(app.deploy("dev"))
    assert result.counts["replace"] == 1
    assert [op for op, _, _ in journal.calls] == ["create", "delete"]
    record = json.loads((tmp_path / ".alchemy/demo/dev/state.json").read_text())["resources"]["t"]
    assert record["props"]["tag"] == "b"
    assert "replaced" not in record


def test_replace_can_delete_first(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    tag = {"t": "a"}

    @app.program
    def infra(stage):
        UniqueThing("u", value="x", tag=tag["t"])

    run(app.deploy("dev"))
    tag["t"] = "b"
    journal.calls.clear()
    run(app.deploy("dev"))
    assert [op for op, _, _ in journal.calls] == ["delete", "create"]


def test_read_returns_outputs_from_state_without_provider_calls(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        t = Thing("t", value="hello")
        return {"value": t.value}

    run(app.deploy("dev"))
    journal.calls.clear()
    result = run(app.read("dev"))
    assert result.outputs == {"value": "hello"}
    assert journal.calls == []


def test_read_of_a_resource_missing_from_state_fails_clearly(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    extra = {"on": False}

    @app.program
    def infra(stage):
        Thing("t")
        if extra["on"]:
            Thing("newcomer")

    run(app.deploy("dev"))
    extra["on"] = True
    with pytest.raises(StateError) as info:
        run(app.read("dev"))
    message = str(info.value)
    assert "newcomer" in message
    assert "demo/dev/newcomer (test::Thing), phase read" in message
    assert "alchemy-nb deploy --stage dev" in message


def test_destroy_deletes_everything_in_reverse_dependency_order(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        a = Thing("a")
        b = Thing("b", value=a.name)
        Thing("c", value=b.name)
        Thing("z")

    run(app.deploy("dev"))
    journal.calls.clear()
    result = run(app.destroy("dev"))
    assert result.counts["delete"] == 4
    deletes = journal.ops("delete")
    assert deletes.index("c") < deletes.index("b") < deletes.index("a")
    assert not (tmp_path / ".alchemy/demo/dev").exists()
    journal.calls.clear()
    assert run(app.destroy("dev")).counts["delete"] == 0  # destroying nothing succeeds


def test_saved_plan_applies_exactly_or_refuses(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    value = {"v": "one"}

    @app.program
    def infra(stage):
        Thing("t", value=value["v"])

    plan = run(app.plan("dev"))
    plan.save(tmp_path / "plan.json")
    loaded = alchemy_nb.Plan.load(tmp_path / "plan.json")
    assert loaded.digest == plan.digest
    result = run(app.deploy("dev", plan=loaded))
    assert result.plan_digest == plan.digest

    # state changed since the plan: refused
    with pytest.raises(PlanError, match="state changed"):
        run(app.deploy("dev", plan=loaded))

    # the program changed since the plan: refused, and nothing applied
    value["v"] = "two"
    plan2 = run(app.plan("dev"))
    value["v"] = "three"
    journal.calls.clear()
    with pytest.raises(PlanError, match="program changed"):
        run(app.deploy("dev", plan=plan2))
    assert journal.calls == []


def test_a_tampered_plan_file_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        Thing("t", value="x")

    run(app.plan("dev")).save(tmp_path / "plan.json")
    data = json.loads((tmp_path / "plan.json").read_text())
    data["changes"][0]["action"] = "noop"
    (tmp_path / "plan.json").write_text(json.dumps(data))
    with pytest.raises(PlanError, match="edited"):
        alchemy_nb.Plan.load(tmp_path / "plan.json")


def test_invalid_ids_are_config_errors(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        Thing("no/slashes")

    with pytest.raises(ConfigError, match="invalid resource id 'no/slashes'"):
        run(app.plan("dev"))


def test_unknown_prop_suggests_the_right_name(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        Thing("t", valeu="x")

    with pytest.raises(ConfigError) as info:
        run(app.plan("dev"))
    assert "unknown prop 'valeu'" in str(info.value)
    assert "did you mean 'value'" in str(info.value)
    assert "demo/dev/t (test::Thing)" in str(info.value)


def test_mistyped_prop_is_a_config_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        Thing("t", sleep="soon")

    with pytest.raises(ConfigError, match="prop 'sleep'"):
        run(app.plan("dev"))


def test_duplicate_ids_in_one_program_are_errors(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def infra(stage):
        Thing("t")
        Thing("t")

    with pytest.raises(ConfigError, match="declared twice"):
        run(app.plan("dev"))


def test_a_program_that_raises_changes_nothing(tmp_path: Path, journal) -> None:
    app = make_app(tmp_path)
    boom = {"on": False}

    @app.program
    def infra(stage):
        Thing("t")
        if boom["on"]:
            raise ValueError("kaboom")

    run(app.deploy("dev"))
    boom["on"] = True
    journal.calls.clear()
    with pytest.raises(ProgramError) as info:
        run(app.deploy("dev"))
    assert "ValueError: kaboom" in str(info.value)
    assert "test_engine.py" in str(info.value)
    assert journal.calls == []  # no orphan deletion after an incomplete program run
    assert [r["id"] for r in run(app.status("dev")).resources] == ["t"]


def test_declaring_outside_a_program_is_an_error() -> None:
    with pytest.raises(ConfigError, match="outside a program run"):
        Thing("t")


def test_re_registering_a_program_replaces_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    def first(stage):
        Thing("one")

    @app.program
    def second(stage):
        Thing("two")

    plan = run(app.plan("dev"))
    assert [c.id for c in plan.changes] == ["two"]


def test_async_programs_and_stage_names(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.program
    async def infra(stage):
        t = Thing("t", value=stage.name)
        return {"stage": t.value}

    assert run(app.deploy("staging")).outputs == {"stage": "staging"}
    assert run(app.deploy("prod")).outputs == {"stage": "prod"}
    assert sorted(run(app.state.stages("demo"))) == ["prod", "staging"]
    with pytest.raises(ConfigError, match="invalid stage name"):
        run(app.deploy("bad stage"))


def test_physical_names_are_deterministic_per_stage(tmp_path: Path) -> None:
    app = make_app(tmp_path, name="My_App")

    @app.program
    def infra(stage):
        t = Thing("Cache.1")
        return {"name": t.name}

    assert run(app.deploy("dev")).outputs == {"name": "my_app-cache-1-dev"}


def test_kind_change_under_the_same_id_is_an_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    which = {"cls": Thing}

    @app.program
    def infra(stage):
        which["cls"]("t")

    run(app.deploy("dev"))
    which["cls"] = UniqueThing
    with pytest.raises(ConfigError, match="is a test::Thing in state but declared as"):
        run(app.plan("dev"))
