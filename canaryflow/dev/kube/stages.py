"""kwok stages canaryflow adds to kwok's own (``stages.yaml`` from the build).

kwok's ``pod-ready`` stage readies only Pending pods. When the API server is away for longer than
the node lease (40 s here), the restarted controller-manager finds the nodes' leases stale, marks
the nodes NotReady and every pod on them not Ready; kwok renews the leases, the nodes are Ready
again, but nothing made the pods Ready again, as a real kubelet would. `POD_READY_AGAIN` does: a
Running pod that is not Ready (and not being deleted) gets its Ready conditions back.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["POD_READY_AGAIN", "write_extra_stages"]

POD_READY_AGAIN = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: canaryflow-pod-ready-again
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Running
"""


def write_extra_stages(directory: Path) -> Path:
    """Write the extra stages into `directory`; the file to pass to kwok as another ``--config``."""
    path = directory / "canaryflow-stages.yaml"
    path.write_text(POD_READY_AGAIN)
    return path
