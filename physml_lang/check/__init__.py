"""The check phase: syntax tree -> checked IR (names, types, domains, options, structure).

``check_program`` resolves a whole file; ``ModelChecker.instantiate`` gives the
:class:`~physml_lang.ir.model.ModelIR` of a model for concrete parameter values; ``check_run``
the :class:`~physml_lang.ir.task.TaskIR` of a run block.
"""
