"""scibind-medical-imaging: 3D medical volumes (CT, MR, OCT) and radiographs on MONAI.

Modules (each imported only when a component is built; :mod:`.plugin` holds the registrations):

- :mod:`.volume`, :mod:`.dicom`, :mod:`.nifti`: files -> :class:`~.volume.Volume` (RAS affine, mm);
- :mod:`.pipeline`, :mod:`.cache`, :mod:`.readers`: MONAI preprocessing, the budgeted cache, the readers;
- :mod:`.phi`, :mod:`.index`, :mod:`.cli`: header allow-list, salted pseudonyms, ``scibind medical-index``;
- :mod:`.encoders`: MONAI ResNet / DenseNet / ViT towers; :mod:`.clinical`: table rows as text;
- :mod:`.writers`, :mod:`.synthetic`: real DICOM/NIfTI writing and the demo dataset.
"""

__version__ = "0.1.0"
