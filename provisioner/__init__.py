"""provisioner: brings up a Jupyter Notebook server on a VM at boot and reports how it went over HTTP."""

__version__ = "0.1.0"
