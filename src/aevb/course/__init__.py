"""For a course: the assignment's autograder and the student's copy of its notebook.

grading           the checks of the student's functions, by name (CHECKS, check); their conventions
densities_checks  the checks of questions 1 and 2's densities and networks
diagnoses         what the checks share: random inputs, and the words for each kind of wrong answer
release           the student's copy of a solution notebook (nbgrader's markers)

Imports: aevb.errors, aevb.model, aevb.runs (atomic writes); nothing imports it but the CLI.
"""

from . import grading, release  # noqa: F401
