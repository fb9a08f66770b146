"""optbench-adabelief: the AdaBelief optimizer as an optbench plugin.

The plugin itself is :mod:`optbench_adabelief.adabelief`, registered in
pyproject.toml under the ``optbench.submissions`` entry-point group. This file
stays empty of imports so that ``bench list`` can locate the plugin cheaply.
"""
