"""The declared intent the program publishes is exactly what it generates.

The policy pack judges a stack's effective access against this data, so it must be built from
the same rows and objects as the policies: any drift would either hide a widening or flag the
program's own objects."""

from __future__ import annotations

import datetime
import json
from typing import Any

from aimesh_policies.effective.intent import read_intents
from aimesh_policies.framework import Context
from aimesh_policies.objects import object_from_manifest

from aimesh.builders import alerts, collector, gateway, intent, secure_model
from aimesh.builders.gateway import reference
from aimesh.settings import Authorization
from tests.unit.test_access import GATEWAY, stack


def _body(config_map: dict[str, Any]) -> dict[str, Any]:
    data = config_map["data"][intent.KEY]
    body: dict[str, Any] = json.loads(data)
    assert data == json.dumps(body, sort_keys=True, separators=(",", ":")), "not canonical JSON"
    return body


def _built(which: int = 0) -> secure_model.ModelObjects:
    settings = stack()
    return secure_model.build(settings, settings.models[which], GATEWAY)


def test_grants_are_the_access_rows() -> None:
    objects = _built()
    body = _body(objects.intent)
    assert [g["caller"] for g in body["grants"]] == [r.caller for r in objects.rows]
    for grant, row in zip(body["grants"], objects.rows, strict=True):
        assert grant["principal"] == row.principal
        assert grant["requestPrincipals"] == list(row.request_principals)
        assert grant["window"] is row.batch
        assert [op["paths"] for op in grant["operations"]] == [
            list(o.paths) for o in row.operations
        ]


def test_layers_are_the_generated_objects() -> None:
    objects = _built()
    body = _body(objects.intent)
    netpols = [m for m in objects.all() if m.get("kind") == "NetworkPolicy"]
    assert [n["name"] for n in body["networkPolicies"]] == [n["metadata"]["name"] for n in netpols]
    assert [n["spec"] for n in body["networkPolicies"]] == [n["spec"] for n in netpols]
    bindings = [m for m in objects.all() if m.get("kind") == "RoleBinding"]
    assert [r["subjects"] for r in body["rbac"]] == [b["subjects"] for b in bindings]
    rules = [
        rule
        for m in objects.all()
        if m.get("kind") == "RequestAuthentication"
        for rule in m["spec"]["jwtRules"]
    ]
    assert [i["issuer"] for i in body["issuers"]] == [r["issuer"] for r in rules]
    assert [i["jwksUri"] for i in body["issuers"]] == [r["jwksUri"] for r in rules]
    assert body["entries"] == [
        {
            "gateway": GATEWAY.qualified,
            "hosts": [f"alpha.{GATEWAY.domain}"],
            "serves": [f"*.{GATEWAY.domain}"],  # what builders/gateway.py gives its servers
        }
    ]


def test_served_hosts_are_the_gateway_servers_hosts() -> None:
    settings = stack()
    served = {h for server in gateway.gateway(settings)["spec"]["servers"] for h in server["hosts"]}
    body = _body(secure_model.build(settings, settings.models[0], reference(settings)).intent)
    assert {h for e in body["entries"] for h in e["serves"]} == served


def test_the_pack_reads_it_without_complaint() -> None:
    settings = stack()
    objs = [o for which in (0, 1) for o in object_from_manifest(_built(which).intent)]
    found = read_intents(objs, Context())
    assert found.problems == []
    assert set(found.models) == {m.ns for m in settings.models}


def test_audit_mode_is_declared_only_while_the_model_is_in_it() -> None:
    settings = stack()
    assert "audit" not in _body(secure_model.build(settings, settings.models[0], GATEWAY).intent)
    audited = settings.models[0].model_copy(
        update={
            "authorization": Authorization(
                mode="audit", reason="TICKET-1", until=datetime.date(2027, 1, 15)
            )
        }
    )
    published = secure_model.build(settings, audited, GATEWAY).intent
    assert _body(published)["audit"] == {"reason": "TICKET-1", "until": "2027-01-15"}
    [read] = read_intents(object_from_manifest(published), Context()).models.values()
    assert read.audit is not None
    assert read.audit.until == datetime.date(2027, 1, 15)


def test_mesh_intent_declares_the_alerts_and_the_audit_pipeline() -> None:
    settings = stack()
    body = _body(intent.mesh_intent(settings))
    assert body["scope"] == "mesh"
    assert [a["alert"] for a in body["alerts"]] == [a.name for a in alerts.active_alerts(settings)]
    pipelines = collector.collector_config(settings)["service"]["pipelines"]
    assert set(body["collector"]["logsPipelines"]) == {
        name for name in pipelines if name.split("/", 1)[0] == "logs"
    }
    assert set(body["accessLogProviders"]) <= {p["name"] for p in body["extensionProviders"]}
    found = read_intents(object_from_manifest(intent.mesh_intent(settings)), Context())
    assert found.problems == []
    assert found.mesh is not None
