"""Identity service: name, capabilities per mode, and Probe following the mounter."""

from __future__ import annotations

from openfiles_csi._proto import csi_pb2

from ..conftest import Node

Service = csi_pb2.PluginCapability.Service


def test_identity(node_env: Node) -> None:
    both = node_env.start_plugin("all")
    info = both.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
    assert info.name == "csi.openfiles.io" and info.vendor_version
    caps = both.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    assert [c.service.type for c in caps.capabilities] == [Service.CONTROLLER_SERVICE]
    node_only = node_env.start_plugin("node")
    caps = node_only.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    assert list(caps.capabilities) == []
    assert node_only.identity.Probe(csi_pb2.ProbeRequest()).ready.value is True
    node_env.mounter.stop()
    assert node_only.identity.Probe(csi_pb2.ProbeRequest()).ready.value is False
    controller = node_env.start_plugin("controller")
    assert controller.identity.Probe(csi_pb2.ProbeRequest()).ready.value is True
