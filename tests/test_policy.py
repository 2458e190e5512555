"""Policies: Cedar decides who may approve, promote or roll back; Rego checks plans.

Every test writes real policy files into an app folder under ``tmp_path`` and runs them
through the real engines (cedarpy, regopy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from alchemy_nb.engine import Action, Change, Phase, Plan
from alchemy_nb.errors import ConfigError, PolicyError
from alchemy_nb.promotion import _policy
from alchemy_nb.promotion._policy import (
    CEDAR_SCHEMA,
    POLICY_ACTIONS,
    Decision,
    Enforcement,
    PlanDecision,
    Policies,
    load_policies,
    mandatory_denials,
)

APPROVALS = """\
@id("prod-approvers")
permit (principal in Team::"prod-reviewers", action == Action::"approve",
        resource == Stage::"prod");

@id("approve-other-stages")
permit (principal, action == Action::"approve", resource)
unless { resource.name == "prod" };

@id("no-self-approval")
forbid (principal, action == Action::"approve", resource)
when { context.release_author == principal };

permit (principal, action in [Action::"reject", Action::"promote",
                              Action::"rollback", Action::"hold"], resource);
"""

NO_D1_DELETE = """\
package alchemy_nb.no_d1_delete

# enforcement: mandatory

deny contains msg if {
  input.stage == "prod"
  some change in input.plan.changes
  change.kind == "cloudflare::D1Database"
  change.action in {"delete", "replace"}
  msg := sprintf("the plan would %s the D1 database %s", [change.action, change.id])
}
"""

TEAMS = {"prod-reviewers": ["bob", "alice"], "interns": ["ivan"]}
RELEASE = "sha256:" + "ab" * 32


def write(app: Path, name: str, text: str) -> Path:
    path = app / "policies" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def approve(policies: Policies, actor: str, *, stage: str = "prod", **kw: Any) -> Decision:
    args: dict[str, Any] = {
        "actor": actor,
        "action": "approve",
        "stage": stage,
        "release": RELEASE,
        "release_author": "alice",
        "teams": TEAMS,
    }
    args.update(kw)
    return policies.authorize(**args)


def plan(stage: str, *changes: tuple[str, str, Action], app: str = "shop") -> dict[str, Any]:
    return Plan(
        app=app,
        stage=stage,
        phase=Phase.PLAN,
        changes=tuple(Change(id=i, kind=k, action=a) for i, k, a in changes),
        base="base",
    ).to_json()


D1_DELETE = ("db", "cloudflare::D1Database", Action.DELETE)


def test_the_documented_examples_are_the_tested_ones() -> None:
    doc = _policy.__doc__ or ""
    for example in (APPROVALS, NO_D1_DELETE, CEDAR_SCHEMA):
        assert textwrap.indent(example, "    ") in doc


# --------------------------------------------------------------------------- no policies


def test_no_policy_folder_allows_everything_and_checks_nothing(tmp_path: Path) -> None:
    policies = load_policies(tmp_path)
    assert policies.files == ()
    for action in POLICY_ACTIONS:
        decision = approve(policies, "mallory", action=action, release_author="mallory")
        assert decision.allowed
        assert decision.policy_ids == ()
    assert policies.check_plan(plan("prod", D1_DELETE), stage="prod") == []
    assert "no policies" in str(policies._repr_mimebundle_()["text/plain"])


def test_a_folder_without_policy_files_is_no_policies(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "notes\n")
    policies = load_policies(tmp_path)
    assert policies.files == ()
    assert approve(policies, "mallory").allowed


def test_an_empty_cedar_file_denies_everything(tmp_path: Path) -> None:
    """Cedar's default: once policies exist, what no policy permits is denied."""
    write(tmp_path, "empty.cedar", "// nothing yet\n")
    decision = approve(load_policies(tmp_path), "bob")
    assert not decision.allowed
    assert decision.reasons == ("no policy permits bob to approve stage prod",)


# --------------------------------------------------------------------------- Cedar


@pytest.fixture
def policies(tmp_path: Path) -> Policies:
    write(tmp_path, "approvals.cedar", APPROVALS)
    write(tmp_path, "no_d1_delete.rego", NO_D1_DELETE)
    return load_policies(tmp_path)


def test_a_reviewer_may_approve_prod(policies: Policies) -> None:
    decision = approve(policies, "bob")
    assert decision.allowed
    assert decision.policy_ids == ("prod-approvers",)
    assert decision.reasons == ("permitted by `prod-approvers` (policies/approvals.cedar:1)",)
    assert decision.errors == ()


def test_a_non_reviewer_may_not_approve_prod(policies: Policies) -> None:
    decision = approve(policies, "mallory")
    assert not decision.allowed
    assert decision.policy_ids == ()
    assert decision.reasons == ("no policy permits mallory to approve stage prod",)


def test_nobody_approves_their_own_release(policies: Policies) -> None:
    # alice is a prod reviewer, so a permit applies too: the forbid wins
    decision = approve(policies, "alice", release_author="alice")
    assert not decision.allowed
    assert decision.policy_ids == ("no-self-approval",)
    assert decision.reasons == ("forbidden by `no-self-approval` (policies/approvals.cedar:9)",)
    # the same reviewer approves someone else's release
    assert approve(policies, "alice", release_author="bob").allowed


def test_stage_attributes_reach_the_policy(policies: Policies) -> None:
    decision = approve(policies, "mallory", stage="staging")
    assert decision.allowed
    assert decision.policy_ids == ("approve-other-stages",)
    # ... and the self-approval rule still holds there
    assert not approve(policies, "mallory", stage="staging", release_author="mallory").allowed


def test_a_policy_without_an_id_is_named_by_file_and_line(policies: Policies) -> None:
    decision = policies.authorize(
        actor="mallory",
        action="promote",
        stage="prod",
        release=RELEASE,
        release_author="alice",
        teams=TEAMS,
    )
    assert decision.allowed
    assert decision.policy_ids == ("policies/approvals.cedar:13",)
    assert decision.reasons == ("permitted by policies/approvals.cedar:13",)
    assert policies.cedar_policy_ids == (
        "prod-approvers",
        "approve-other-stages",
        "no-self-approval",
        "policies/approvals.cedar:13",
    )


def test_a_forbid_wins_over_a_permit(tmp_path: Path) -> None:
    write(
        tmp_path,
        "open.cedar",
        """\
        @id("everyone-everything")
        permit (principal, action, resource);
        """,
    )
    write(
        tmp_path,
        "interns.cedar",
        """\
        @id("no-intern-prod-promotions")
        forbid (principal in Team::"interns", action == Action::"promote",
                resource == Stage::"prod");
        """,
    )
    policies = load_policies(tmp_path)

    def promote(actor: str, stage: str) -> Decision:
        return policies.authorize(
            actor=actor,
            action="promote",
            stage=stage,
            release=RELEASE,
            release_author="alice",
            teams=TEAMS,
        )

    assert promote("ivan", "prod").policy_ids == ("no-intern-prod-promotions",)
    assert not promote("ivan", "prod").allowed
    assert promote("ivan", "staging").allowed
    assert promote("ivan", "staging").policy_ids == ("everyone-everything",)
    assert promote("bob", "prod").allowed


def test_the_context_carries_the_release_and_its_author(tmp_path: Path) -> None:
    write(
        tmp_path,
        "context.cedar",
        f"""\
        @id("this-release-only")
        permit (principal, action, resource)
        when {{ context.release_digest == "{RELEASE}" }};

        @id("no-intern-releases-in-prod")
        forbid (principal, action == Action::"promote", resource == Stage::"prod")
        when {{ context.release_author in Team::"interns" }};
        """,
    )
    policies = load_policies(tmp_path)
    assert approve(policies, "bob").allowed
    assert not approve(policies, "bob", release="sha256:other").allowed
    intern_release = approve(policies, "bob", action="promote", release_author="ivan")
    assert intern_release.policy_ids == ("no-intern-releases-in-prod",)


def test_the_documented_schema_fits_the_requests(tmp_path: Path) -> None:
    """CEDAR_SCHEMA describes exactly what authorize() sends: with it saved beside the
    docstring's example, every action type-checks and decides."""
    write(tmp_path, "model.cedarschema", CEDAR_SCHEMA)
    write(tmp_path, "approvals.cedar", APPROVALS)
    policies = load_policies(tmp_path)
    assert approve(policies, "bob").allowed
    assert not approve(policies, "alice", release_author="alice").allowed
    for action in POLICY_ACTIONS:
        decision = approve(policies, "mallory", action=action, stage="staging")
        assert decision.allowed, action
        assert decision.errors == ()


def test_a_policy_that_does_not_fit_the_schema_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "model.cedarschema", CEDAR_SCHEMA)
    write(
        tmp_path,
        "typo.cedar",
        """\
        permit (principal, action, resource);

        forbid (principal, action, resource)
        when { resource.nmae == "prod" };
        """,
    )
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert caught.value.where == "policies/typo.cedar:4:17"
    assert "nmae" in str(caught.value)


def test_a_schema_that_does_not_fit_the_request_is_a_policy_error(tmp_path: Path) -> None:
    no_name = CEDAR_SCHEMA.replace("entity Stage { name: String };", "entity Stage;")
    assert no_name != CEDAR_SCHEMA
    write(tmp_path, "model.cedarschema", no_name)
    write(tmp_path, "open.cedar", "permit (principal, action, resource);\n")
    policies = load_policies(tmp_path)
    with pytest.raises(PolicyError, match="Cedar could not decide") as caught:
        approve(policies, "bob")
    assert caught.value.where == "policies/model.cedarschema"


def test_a_policy_that_fails_to_evaluate_is_skipped_and_listed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "broken.cedar",
        """\
        permit (principal, action, resource);

        @id("reads-a-missing-attribute")
        forbid (principal, action, resource) when { resource.owner == principal };
        """,
    )
    decision = approve(load_policies(tmp_path), "bob")
    assert decision.allowed
    assert len(decision.errors) == 1
    assert decision.errors[0].startswith(
        "`reads-a-missing-attribute` (policies/broken.cedar:3) was skipped:"
    )
    assert "owner" in decision.errors[0]


def test_a_duplicate_policy_id_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.cedar", '@id("x")\npermit (principal, action, resource);\n')
    write(tmp_path, "b.cedar", '\n@id("x")\nforbid (principal, action, resource);\n')
    with pytest.raises(PolicyError, match='two Cedar policies have the id "x"') as caught:
        load_policies(tmp_path)
    assert caught.value.where == "policies/b.cedar:2"


@pytest.mark.parametrize(
    ("actor", "action", "error"),
    [("", "approve", "the actor name is empty"), ("bob", "deploy", "unknown policy action")],
)
def test_bad_requests_are_config_errors(
    policies: Policies, actor: str, action: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        approve(policies, actor, action=action)
    with pytest.raises(ConfigError, match=error):  # with no policies too
        approve(Policies(), actor, action=action)


def test_a_decision_is_json_and_renders(policies: Policies) -> None:
    decision = approve(policies, "alice", release_author="alice")
    data = json.loads(json.dumps(decision.to_json()))
    assert data == {
        "allowed": False,
        "actor": "alice",
        "action": "approve",
        "stage": "prod",
        "release": RELEASE,
        "policy_ids": ["no-self-approval"],
        "reasons": ["forbidden by `no-self-approval` (policies/approvals.cedar:9)"],
        "errors": [],
    }
    assert Decision.from_json(data) == decision
    bundle = decision._repr_mimebundle_()
    assert bundle["text/plain"] == (
        "denied: alice may not approve stage prod\n"
        "  - forbidden by `no-self-approval` (policies/approvals.cedar:9)"
    )
    assert "<strong>denied: alice may not approve stage prod</strong>" in bundle["text/html"]


# --------------------------------------------------------------------------- Rego


def test_deleting_a_d1_database_in_prod_is_denied(policies: Policies) -> None:
    [decision] = policies.check_plan(plan("prod", D1_DELETE), stage="prod")
    assert decision == PlanDecision(
        policy="no_d1_delete",
        file="policies/no_d1_delete.rego",
        enforcement=Enforcement.MANDATORY,
        stage="prod",
        denials=("the plan would delete the D1 database db",),
    )
    assert decision.blocking
    assert mandatory_denials([decision]) == [decision]


@pytest.mark.parametrize(
    ("stage", "change"),
    [
        ("staging", D1_DELETE),
        ("prod", ("db", "cloudflare::D1Database", Action.CREATE)),
        ("prod", ("db", "cloudflare::D1Database", Action.UPDATE)),
        ("prod", ("api", "cloudflare::Worker", Action.DELETE)),
    ],
)
def test_other_plans_pass(policies: Policies, stage: str, change: tuple[str, str, Action]) -> None:
    [decision] = policies.check_plan(plan(stage, change), stage=stage)
    assert decision.passed
    assert decision.denials == ()
    assert mandatory_denials([decision]) == []


def test_advisory_denials_do_not_block(tmp_path: Path) -> None:
    write(tmp_path, "no_d1_delete.rego", NO_D1_DELETE)
    write(
        tmp_path,
        "big_plans.rego",
        """\
        package alchemy_nb.big_plans

        deny contains msg if {
          count(input.plan.changes) > 1
          msg := sprintf("%d changes in one plan", [count(input.plan.changes)])
        }
        """,
    )
    policies = load_policies(tmp_path)
    assert policies.rego_policy_names == ("big_plans", "no_d1_delete")

    two_workers = plan(
        "prod",
        ("a", "cloudflare::Worker", Action.CREATE),
        ("b", "cloudflare::Worker", Action.CREATE),
    )
    advisory, mandatory = policies.check_plan(two_workers, stage="prod")
    assert advisory.enforcement is Enforcement.ADVISORY  # the default
    assert advisory.denials == ("2 changes in one plan",)
    assert not advisory.blocking
    assert mandatory.passed
    assert mandatory_denials([advisory, mandatory]) == []

    worker = ("a", "cloudflare::Worker", Action.CREATE)
    both = policies.check_plan(plan("prod", D1_DELETE, worker), stage="prod")
    assert [d.policy for d in mandatory_denials(both)] == ["no_d1_delete"]


def test_enforcement_may_follow_the_package_line_or_precede_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "first.rego",
        """\
        # Owned by the platform team.
        # Enforcement: Mandatory
        package alchemy_nb.first

        import rego.v1

        deny contains "always" if { true }
        """,
    )
    [decision] = load_policies(tmp_path).check_plan(plan("dev"), stage="dev")
    assert decision.enforcement is Enforcement.MANDATORY
    assert decision.blocking


def test_the_input_is_the_plan_json_and_the_stage(tmp_path: Path) -> None:
    write(
        tmp_path,
        "echo.rego",
        """\
        package alchemy_nb.echo

        deny contains msg if {
          some change in input.plan.changes
          msg := sprintf("%s %s/%s: %s %s %s (%s)", [
            input.stage, input.plan.app, input.plan.stage, change.action, change.kind,
            change.id, input.plan.format,
          ])
        }

        deny contains sprintf("counts.delete=%d", [input.plan.counts.delete]) if { true }

        deny contains input.plan.digest if { true }
        """,
    )
    plan_json = plan("prod", ("crème→brûlée", "cloudflare::KVNamespace", Action.DELETE))
    [decision] = load_policies(tmp_path).check_plan(plan_json, stage="prod")
    assert decision.denials == tuple(
        sorted(
            [
                "prod shop/prod: delete cloudflare::KVNamespace crème→brûlée (alchemy-nb/plan@1)",
                "counts.delete=1",
                plan_json["digest"],
            ]
        )
    )


def test_denials_that_are_not_strings_become_json(tmp_path: Path) -> None:
    write(
        tmp_path,
        "structured.rego",
        """\
        package alchemy_nb.structured

        deny contains {"id": c.id, "why": "no"} if { some c in input.plan.changes }
        """,
    )
    [decision] = load_policies(tmp_path).check_plan(plan("dev", D1_DELETE), stage="dev")
    assert decision.denials == ('{"id": "db", "why": "no"}',)


def test_opa_test_files_are_not_plan_checks(tmp_path: Path) -> None:
    write(tmp_path, "no_d1_delete.rego", NO_D1_DELETE)
    write(
        tmp_path,
        "no_d1_delete_test.rego",
        "package alchemy_nb.no_d1_delete_test\n\ntest_x if { true }\n",
    )
    policies = load_policies(tmp_path)
    assert policies.rego_policy_names == ("no_d1_delete",)
    assert policies.files == ("policies/no_d1_delete.rego",)


def test_two_modules_may_not_share_a_package(tmp_path: Path) -> None:
    write(tmp_path, "a.rego", NO_D1_DELETE)
    write(tmp_path, "b.rego", NO_D1_DELETE)
    with pytest.raises(PolicyError, match="two Rego modules declare package"):
        load_policies(tmp_path)


def test_a_module_that_fails_while_checking_is_a_policy_error(tmp_path: Path) -> None:
    """A broken check never passes silently, advisory or not."""
    write(
        tmp_path,
        "lazy.rego",
        """\
        package alchemy_nb.lazy

        deny contains msg if {
          input.stage == "prod"
          msg := nosuchfn(input.stage)
        }
        """,
    )
    policies = load_policies(tmp_path)  # the broken line is not reached on load
    assert policies.check_plan(plan("dev"), stage="dev")[0].passed
    with pytest.raises(PolicyError, match="Function not found: nosuchfn") as caught:
        policies.check_plan(plan("prod"), stage="prod")
    assert caught.value.where == "policies/lazy.rego:5:10"


def test_plan_decisions_are_json_and_render(policies: Policies) -> None:
    [decision] = policies.check_plan(plan("prod", D1_DELETE), stage="prod")
    data = json.loads(json.dumps(decision.to_json()))
    assert data == {
        "policy": "no_d1_delete",
        "file": "policies/no_d1_delete.rego",
        "enforcement": "mandatory",
        "stage": "prod",
        "passed": False,
        "denials": ["the plan would delete the D1 database db"],
    }
    assert PlanDecision.from_json(data) == decision
    assert str(decision) == (
        "policy no_d1_delete (mandatory): denied\n  - the plan would delete the D1 database db"
    )
    assert (
        "<li>the plan would delete the D1 database db</li>"
        in (decision._repr_mimebundle_()["text/html"])
    )


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            '@id("a")\npermit (principal, action, resource);\n\n'
            'permit (principal, action == Action::"approve", resource)\n'
            "when { principal.name == };\n",
            "policies/bad.cedar:5:26",
            "unexpected token `}`",
            id="syntax",
        ),
        pytest.param(
            'permit (principal, action, resource)\n\n@id("x")\n'
            "forbid (principal, action, resource);\n",
            "policies/bad.cedar:3:1",
            "unexpected token `@`",
            id="missing-semicolon-between",
        ),
        pytest.param(
            "permit (principal, action, resource);\npermit (principal, action, resource)\n",
            "policies/bad.cedar:2:37",
            "must end with `;`",
            id="missing-semicolon-at-end",
        ),
        pytest.param(
            "// who may do what\npermit (principal, action, resource)\nwhen { foo == 1 };\n",
            "policies/bad.cedar:3:8",
            "invalid variable: foo",
            id="unknown-variable",
        ),
        pytest.param(
            'permit (principal, action, resource) when { "abc };\n',
            "policies/bad.cedar:1:45",
            "invalid token",
            id="unterminated-string",
        ),
        pytest.param(
            "\npermit (principal == ?principal, action, resource);\n",
            "policies/bad.cedar:2:1",
            "templates",
            id="template",
        ),
    ],
)
def test_a_malformed_cedar_policy_names_file_line_and_column(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    write(tmp_path, "bad.cedar", text)
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert caught.value.where == where
    line = where.split(":")[1]
    assert f"policies/bad.cedar is malformed at line {line}" in str(caught.value)
    assert message in str(caught.value)


def test_a_malformed_cedar_schema_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "model.cedarschema", "entity Team;\nentity User in [Team] { x: Strin };\n")
    with pytest.raises(PolicyError, match="failed to resolve type: Strin") as caught:
        load_policies(tmp_path)
    assert caught.value.where == "policies/model.cedarschema:2:28"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            'package alchemy_nb.bad\n\n# é→\ndeny contains msg if {\n  input.stage == "prod"\n'
            "  msg := \n}\n",
            "policies/bad.rego:6:7",
            "Invalid assignment operator",
            id="syntax",
        ),
        pytest.param(
            'package other.bad\n\ndeny contains "x" if { true }\n',
            "policies/bad.rego:1:1",
            "alchemy-nb reads `package alchemy_nb.<name>`",
            id="foreign-package",
        ),
        pytest.param(
            'deny contains "x" if { true }\n',
            "policies/bad.rego:1:1",
            "no `package alchemy_nb.<name>` line",
            id="no-package",
        ),
        pytest.param(
            'package alchemy_nb.bad\n# enforcement: mandatroy\ndeny contains "x" if { true }\n',
            "policies/bad.rego:2:1",
            "unknown enforcement 'mandatroy'",
            id="enforcement",
        ),
        pytest.param(
            'package alchemy_nb.bad\n\ndeny contains msg if {\n  msg := nosuchfn("x")\n}\n',
            "policies/bad.rego:4:10",
            "Function not found: nosuchfn",
            id="unknown-function",
        ),
        pytest.param(
            "package alchemy_nb.bad\n\nallow := true\n",
            "policies/bad.rego",
            "defines no `deny` rule",
            id="no-deny",
        ),
        pytest.param(
            'package alchemy_nb.bad\n\ndeny := "no"\n',
            "policies/bad.rego",
            "is a string, not a set of messages",
            id="deny-not-a-set",
        ),
    ],
)
def test_a_malformed_rego_module_names_file_and_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], text: str, where: str, message: str
) -> None:
    write(tmp_path, "bad.rego", text)
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert caught.value.where == where
    assert message in str(caught.value)
    # rego-cpp prints parse errors to stdout unless told not to
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("file", "text", "missing"),
    [
        ("a.cedar", "permit (principal, action, resource);\n", ["cedarpy"]),
        ("a.rego", NO_D1_DELETE, ["regopy", "regopy.rego_shared"]),
    ],
)
def test_a_missing_engine_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, text: str, missing: list[str]
) -> None:
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)
    write(tmp_path, file, text)
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert f"needs the `{missing[0]}` package" in str(caught.value)
    assert caught.value.fix == "pip install 'alchemy-nb[policy]'"


def test_engines_load_only_when_their_files_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import sys, alchemy_nb.promotion._policy; "
        "print(sorted(m for m in ('cedarpy', 'regopy') if m in sys.modules))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert imported.strip() == "[]"

    with monkeypatch.context() as patched:
        for name in ("cedarpy", "regopy", "regopy.rego_shared"):
            patched.setitem(sys.modules, name, None)
        assert load_policies(tmp_path).check_plan(plan("prod"), stage="prod") == []

    monkeypatch.setitem(sys.modules, "cedarpy", None)
    write(tmp_path, "no_d1_delete.rego", NO_D1_DELETE)
    policies = load_policies(tmp_path)  # Rego only: cedarpy is not needed
    assert approve(policies, "mallory").allowed
    assert not policies.check_plan(plan("prod", D1_DELETE), stage="prod")[0].passed
