// Tiles of the Winograd convolutions (winograd.c's F(2x2, 3x3), winograd_4x4.c's F(4x4, 3x3)):
// where tile p of a batch lies, and the input pixels under it. `side` is the output tile's side;
// the input tile's is side + 2. Always inlined with a constant side.
#ifndef WINOGRAD_H
#define WINOGRAD_H

#include "net_kd.h"
#include "vector.h"

// Where a tile lies: its image and its top-left output pixel.
typedef struct {
  u32 image, oy, ox;
} Tile;

static inline __attribute__((always_inline)) Tile tileAt(const Op *op, u32 p, const u32 side) {
  const u32 across = (op->outW + side - 1) / side, perImage = across * ((op->outH + side - 1) / side), q = p % perImage;
  return (Tile){p / perImage, side * (q / across), side * (q % across)};
}

// The (side + 2)^2 input pixels under a tile of image x, row by row; 0 where they fall on the
// padding or past the edge.
static inline __attribute__((always_inline)) void tileInputs(const Op *op, float *x, Tile t, const u32 side, float **at) {
  const int n = (int)side + 2, iy0 = (int)t.oy - (int)op->padT, ix0 = (int)t.ox - (int)op->padL;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      const int iy = iy0 + i, ix = ix0 + j;
      const int inside = iy >= 0 && iy < (int)op->inH && ix >= 0 && ix < (int)op->inW;
      at[i * n + j] = inside ? x + ((u32)iy * op->inW + (u32)ix) * op->inC : 0;
    }
}

#endif
