"""`deployments/prefect.yaml`, read the way `prefect deploy` reads it, checked with Prefect's own models.

Entrypoints import and give the parameter schema the UI renders (Prefect's `parameter_schema`, what
`prefect deploy` sends); the crash trigger parses as a deployment trigger, matches exactly the
events the server emits for a crashed rollout run, and its parameters render (with the server's
hydration of a run-deployment action) into a valid request for the cleanup flow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import yaml

PREFECT_YAML = Path(__file__).resolve().parents[3] / "deployments" / "prefect.yaml"
FLOWS = {
    "rollout": ("rollout", "request", "RolloutRequest"),
    "cleanup": ("cleanup", "target", "CleanupRequest"),
    "release": ("release", "request", "ReleaseRequest"),
    "undo": ("undo", "request", "UndoRequest"),
}


def _config() -> Any:
    from prefect.cli.deploy._models import PrefectYamlModel

    return PrefectYamlModel.model_validate(yaml.safe_load(PREFECT_YAML.read_text()))


def _deployment(name: str) -> Any:
    return next(d for d in _config().deployments if d.name == name)


def _crash_trigger() -> Any:
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    (spec,) = _deployment("cleanup").triggers
    return TypeAdapter(DeploymentTriggerTypes).validate_python(spec)


def test_the_file_defines_the_deployments_of_every_flow_on_the_process_pool() -> None:
    config = _config()

    assert sorted(d.name for d in config.deployments) == ["cleanup", "release", "rollout", "undo"]
    for deployment in config.deployments:
        assert deployment.work_pool.name == "canaryflow-process"
        assert deployment.enforce_parameter_schema is True
        assert deployment.parameters == {}  # every parameter comes from the caller or the trigger
    assert _deployment("rollout").triggers is None


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_every_entrypoint_imports_and_its_schema_is_a_form_of_the_request(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    monkeypatch.chdir(PREFECT_YAML.parents[1])  # `prefect deploy` runs from the repository root
    flow_name, parameter, model_name = FLOWS[name]
    flow = load_flow_from_entrypoint(_deployment(name).entrypoint)
    schema = parameter_schema(flow).model_dump_for_openapi()

    assert flow.name == flow_name
    assert schema["required"] == [parameter]
    assert list(schema["properties"]) == [parameter]
    assert schema["properties"][parameter]["$ref"] == f"#/definitions/{model_name}"
    fields = schema["definitions"][model_name]["properties"]
    assert schema == flow.parameters.model_dump_for_openapi()  # the schema the flow validates runs with
    assert all(field.get("description") for field in fields.values()), fields


def test_the_rollout_form_has_the_request_fields() -> None:
    from prefect.utilities.callables import parameter_schema

    from canaryflow.requests import RolloutRequest
    from flows.rollout import rollout

    form = parameter_schema(rollout).model_dump_for_openapi()["definitions"]["RolloutRequest"]

    assert list(form["properties"]) == list(RolloutRequest.model_fields)
    assert form["required"] == ["spec", "image"]
    assert form["additionalProperties"] is False


def test_the_crash_trigger_runs_the_cleanup_deployment() -> None:
    from prefect.events import DeploymentEventTrigger
    from prefect.events.actions import RunDeployment

    trigger = _crash_trigger()
    assert isinstance(trigger, DeploymentEventTrigger)
    cleanup_deployment = uuid4()
    trigger.set_deployment_id(cleanup_deployment)
    automation = trigger.as_automation()

    assert automation.enabled
    assert automation.trigger.expect == {"prefect.flow-run.Crashed", "prefect.flow-run.Failed"}
    assert automation.trigger.for_each == {"prefect.resource.id"}
    (action,) = automation.actions
    assert isinstance(action, RunDeployment)
    assert (action.source, action.deployment_id) == ("selected", cleanup_deployment)


def _run_event(state: str, flow_name: str) -> Any:
    """A flow run state change event as the server emits it (`flow_run_state_change_event`)."""
    from prefect.server.events.schemas.events import ReceivedEvent

    return ReceivedEvent(
        occurred=datetime.now(UTC),
        event=f"prefect.flow-run.{state}",
        resource={
            "prefect.resource.id": f"prefect.flow-run.{uuid4()}",
            "prefect.resource.name": "web-3f9a2c1e",
            "prefect.state-name": state,
        },
        related=[
            {"prefect.resource.id": f"prefect.flow.{uuid4()}", "prefect.resource.role": "flow",
             "prefect.resource.name": flow_name},
            {"prefect.resource.id": f"prefect.deployment.{uuid4()}", "prefect.resource.role": "deployment",
             "prefect.resource.name": flow_name},
        ],
        id=uuid4(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("state", "flow_name", "fires"),
    [
        ("Crashed", "rollout", True),
        ("Failed", "rollout", True),  # an error no retry fixed may have left work half done
        ("RolledBack", "rollout", False),  # a converged rollback (a Failed state by its own name)
        ("Aborted", "rollout", False),
        ("Completed", "rollout", False),
        ("Cancelled", "rollout", False),
        ("Crashed", "cleanup", False),
        ("Failed", "cleanup", False),
    ],
)
def test_the_trigger_fires_only_for_crashed_or_failed_rollout_runs(
    state: str, flow_name: str, fires: bool
) -> None:
    from prefect.server.events.schemas.automations import EventTrigger

    deployment_trigger = _crash_trigger()
    deployment_trigger.set_deployment_id(uuid4())
    trigger = EventTrigger.model_validate(deployment_trigger.as_automation().trigger.model_dump())

    assert trigger.covers(_run_event(state, flow_name)) is fires


def test_the_trigger_parameters_render_into_a_cleanup_of_the_crashed_runs_target() -> None:
    from prefect.server.events.actions import RunDeployment
    from prefect.server.schemas.responses import FlowRunResponse
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from flows.cleanup import CleanupRequest, cleanup

    crashed = FlowRunResponse(
        id=uuid4(),
        name="web-3f9a2c1e",
        flow_id=uuid4(),
        parameters={
            "request": {"spec": "config/rollouts/web.yaml", "image": "registry.example.com/shop/web:1.1.0",
                        "rollout_id": None, "triggered_by": "github push a1b2c3d"},
        },
    )  # fmt: skip
    parameters = dict(_crash_trigger().parameters)
    RunDeployment._upgrade_v1_templates(parameters)  # what the server does before rendering
    rendered = hydrate(
        parameters,
        HydrationContext(render_jinja=True, jinja_context={"flow_run": crashed}, raise_on_error=True),
    )

    request = cleanup.validate_parameters(rendered)["target"]
    assert request == CleanupRequest(spec="config/rollouts/web.yaml", rollout_id="web-3f9a2c1e")
