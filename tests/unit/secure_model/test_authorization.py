"""Authorization of one model: deny-all, ALLOW rules from the access rows, the admin DENY and
the JWT validation at the model."""

from __future__ import annotations

from aimesh.builders import access, secure_model
from aimesh.builders.secure_model import (
    authorization,
)
from tests.unit.secure_model.support import named, one_model
from tests.unit.test_access import GATEWAY, stack


def test_deny_all_and_allow_rules_come_from_the_rows(alpha: secure_model.ModelObjects) -> None:
    assert alpha.deny_all["metadata"]["name"] == "deny-all"
    assert alpha.deny_all["spec"] == {}
    allow = named(alpha, "AuthorizationPolicy", "alpha-allow")
    assert allow["spec"]["action"] == "ALLOW"
    assert allow["spec"]["rules"] == [r.rule() for r in alpha.rows if not r.batch]
    principals = [
        p for rule in allow["spec"]["rules"] for p in rule["from"][0]["source"]["principals"]
    ]
    # The batch caller is NOT in the always-on policy.
    assert "cluster.local/ns/batch/sa/nightly" not in principals
    assert "cluster.local/ns/apps/sa/web" in principals


def test_admin_paths_denied_to_everyone_but_admins(alpha: secure_model.ModelObjects) -> None:
    deny = named(alpha, "AuthorizationPolicy", "alpha-deny-admin")
    assert deny["spec"]["action"] == "DENY"
    rule = deny["spec"]["rules"][0]
    assert rule["from"] == [{"source": {"notPrincipals": ["cluster.local/ns/ml/sa/operator"]}}]
    assert "/v2/repository*" in rule["to"][0]["operation"]["paths"]


def test_without_admins_operator_paths_are_denied_to_all() -> None:
    settings, m = one_model(callers=[{"namespace": "a", "serviceAccount": "b"}])
    deny = authorization.deny_admin(m, access.rows(settings, m, GATEWAY))
    assert "from" not in deny["spec"]["rules"][0]


def test_admin_integration_is_exempted_by_its_token_only() -> None:
    settings = stack()
    raw_models = [
        {
            "name": "alpha",
            "format": "sklearn",
            "storageUri": "gs://b/a",
            "integrations": [{"name": "partner", "role": "admin"}],
        }
    ]
    settings = stack(models=raw_models)
    m = settings.models[0]
    source = authorization.deny_admin(m, access.rows(settings, m, GATEWAY))["spec"]["rules"][0][
        "from"
    ][0]["source"]
    # The gateway principal itself is NOT exempted (every integration shares it).
    assert "notPrincipals" not in source
    assert source["notRequestPrincipals"] == ["https://idp.partner.example/client-a"]


def test_model_validates_integration_tokens_again(alpha: secure_model.ModelObjects) -> None:
    jwt = named(alpha, "RequestAuthentication", "alpha-jwt")
    rules = jwt["spec"]["jwtRules"]
    assert [r["issuer"] for r in rules] == ["https://idp.partner.example"]  # only granted ones
    assert rules[0]["jwksUri"].startswith("https://")
    assert "forwardOriginalToken" not in rules[0]  # the model container never sees it


def test_no_integrations_no_request_authentication() -> None:
    settings, m = one_model()
    assert authorization.request_authentication(settings, m) is None
    assert authorization.allow_policy(m, []) is None
