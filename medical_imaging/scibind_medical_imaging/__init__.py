"""scibind-medical-imaging: 3D medical volumes (CT, MR, OCT) and radiographs on MONAI."""

__version__ = "0.1.0"
