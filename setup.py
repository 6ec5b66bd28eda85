"""Build hook for the one compiled module: the ERS parser's accelerated twin.

Everything else is declared in pyproject.toml. The extension is optional: where it cannot be
compiled (no C compiler), the install still succeeds and the pure-Python parser
(``platform_assets/logbook/ers.py``) is used; ``platform_assets.logbook.parse.ERS_COMPILED`` tells
which one runs.
"""

import lxml
from Cython.Build import cythonize
from setuptools import Extension, setup

ers_fast = Extension(
    "platform_assets.logbook._ers_fast",
    ["platform_assets/logbook/_ers_fast.pyx"],
    # lxml ships its C API and the libxml2 headers for extensions that read its trees.
    include_dirs=lxml.get_include(),
    optional=True,
)

setup(ext_modules=cythonize([ers_fast], compiler_directives={"language_level": 3}))
