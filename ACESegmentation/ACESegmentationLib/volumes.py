"""Label volumes as a table node: the rows of ``ACELib.metrics.volumes.label_volumes`` in MRML."""

from __future__ import annotations

from collections.abc import Sequence

import vtk

COLUMNS = (("Label", vtk.vtkStringArray), ("Value", vtk.vtkIntArray), ("Voxels", vtk.vtkIntArray),
           ("Volume (mL)", vtk.vtkDoubleArray))


def fillVolumeTable(scene, rows: Sequence[dict], tableNode=None, name: str = "ACE volumes"):
    """Put volume rows (``label``, ``value``, ``voxels``, ``volume_ml``) into a ``vtkMRMLTableNode``.

    Args:
        tableNode: node to refill (its columns are replaced); a new node named ``name`` when None.

    Returns:
        The table node: columns Label, Value, Voxels, Volume (mL); one row per label.
    """
    if tableNode is None:
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = tableNode.GetTable()
    while table.GetNumberOfColumns():
        table.RemoveColumn(0)
    keys = ("label", "value", "voxels", "volume_ml")
    for (title, arrayClass), key in zip(COLUMNS, keys):
        column = arrayClass()
        column.SetName(title)
        for row in rows:
            column.InsertNextValue(str(row[key]) if arrayClass is vtk.vtkStringArray else row[key])
        table.AddColumn(column)
    tableNode.SetColumnUnitLabel("Volume (mL)", "mL")
    tableNode.SetColumnDescription("Voxels", "voxels of the label on the reference volume's grid")
    table.Modified()
    tableNode.Modified()
    return tableNode
