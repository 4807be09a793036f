"""Maps the architecture's top-level folders into the single import namespace ``physml_lang``.

``compiler/`` is ``physml_lang.compiler``, ``runtime/`` is ``physml_lang.runtime``; the grammar and
the standard library travel as package data. Sub-packages are discovered, so adding a folder with
an ``__init__.py`` needs no change here.
"""

from setuptools import find_packages, setup

ROOTS = {
    "physml_lang": "physml_lang",
    "physml_lang.compiler": "compiler",
    "physml_lang.runtime": "runtime",
    "physml_lang.grammar": "grammar",
    "physml_lang.stdlib": "stdlib",
}

packages = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
