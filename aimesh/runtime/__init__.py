"""Code that runs inside the cluster, shipped as source (a ConfigMap) rather than as an image.

Standard library only, Python 3.11 (the pinned runtime image's): these modules must import in a
bare interpreter. The program imports the same modules (settings validation reads schedules with
`schedule`), so what is validated offline is exactly what runs in the pod.
"""
