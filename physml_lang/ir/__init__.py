"""The typed intermediate representation between the front end and the compiler.

``expr``: the expression IR; ``walk``: the one expression walker; ``functions``: the one
function table; ``model``/``task``/``program``: the checked program; ``text``: its printed form.
"""
