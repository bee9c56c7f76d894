"""Generated gRPC code is never edited by hand and never stale."""

from __future__ import annotations

from npcvoice.catalog import SERVICES
from npcvoice.devtools import protogen


def test_generated_code_matches_the_protos():
    assert protogen.check() == [], "stale generated code: run `python -m npcvoice.devtools.protogen`"


def test_the_catalog_names_the_proto_services_each_module_registers():
    for entry in SERVICES.values():
        assert entry.registration().grpc_service == entry.grpc_service
