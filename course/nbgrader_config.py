# nbgrader's settings for grading aevb's assignment (nbgrader 0.9). Copy this folder's layout to your course
# directory: nbgrader_config.py beside source/vae/assignment.ipynb (the solution notebook, from notebooks/).
#
#   make kernel                            # once: the "aevb" Jupyter kernel, this project's .venv (jax, aevb)
#   nbgrader generate_assignment vae       # release/vae/assignment.ipynb, the students' copy
#   nbgrader autograde vae                 # each submitted/STUDENT/vae/assignment.ipynb, graded
#
# Without the "aevb" kernel, nbgrader would run the notebooks in its own environment's "python3", which has
# no jax and no aevb: every check fails and every student gets 0 (aevb's tests grade three submissions with
# this file: a correct one 11/11, a partly wrong one in between, an empty one 0/11).
import os

c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "aevb"
# The project's environment, installed as a kernel by `make kernel`; the grader runs it, not its own python3.
c.ExecutePreprocessor.kernel_name = "aevb"
c.Execute.kernel_name = "aevb"
# The notebook's smoke mode (1 epoch on 300 training and 100 test images, 100 hidden units, the quick evaluation:
# the whole notebook in about a minute on 2 cores): the grades come from the checks, which do not depend on how
# long the model trains.
os.environ.setdefault("AEVB_SMOKE", "1")
# Each cell within this many seconds (nbgrader's default of 30 fails the training cell); a check that runs
# longer than aevb.course.diagnoses.SECONDS_PER_CHECK gets its own verdict first.
c.Execute.timeout = 600
c.ExecutePreprocessor.timeout = 600
# Runs: each graded notebook trains into runs/ beside itself (nbgrader's autograded/STUDENT/vae/runs), never a
# folder shared by students, where the second notebook graded would find the first one's run already trained.
