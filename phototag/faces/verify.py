"""The face check: MediaPipe Face Mesh's face-presence flag on BlazeFace's boxes.

BlazeFace alone scores a cat's face at 0.79 and a coffee cup at 0.68 (scikit-image's
``chelsea`` and ``coffee``), as high as real faces (0.77 and 0.88 on ``camera`` and
``astronaut``). Human (``src/face/facemesh.ts``) runs Face Mesh on every box and keeps the face
only when the mesh's face flag is high; phototag does the same, on the crop Human gives the mesh
(the box's longer side enlarged 1.6 times, square; RGB in 0-1; 192 x 192), levelled by the eyes.
Only the flag is used: the 468 mesh points are not stored.
"""

from __future__ import annotations

#: Face Mesh's input side (pixels).
INPUT_SIZE = 192
#: Human's crop factor for the mesh model.
ENLARGE = 1.6
