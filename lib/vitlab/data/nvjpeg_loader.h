#pragma once
// The streamed loader of image folders on CUDA: JPEGs decoded on the GPU with nvJPEG (batched,
// on the hardware decoder where the GPU has one, else nvJPEG's hybrid decoder) and cropped,
// resized and laid out by one kernel (kernels/image_resize.h), so the CPU cores only read
// files. Worker threads read each batch's files a few batches ahead; one thread decodes on a
// stream of its own, which the training step waits for. With data.hw_decoder_load < 1 part of
// each batch goes to nvJPEG's hybrid decoder instead, its Huffman stage on host threads beside
// the batched call. The crops are data/stream.h's: the
// same RandomResizedCrop boxes from (seed, epoch, index), the same evaluation geometry; the
// pixels are within one grey level of PIL's. Built where CMake finds CUDA's nvJPEG.
#include <memory>

#include "vitlab/data/loader.h"

namespace vitlab {

bool nvjpeg_available();  // this build has the nvJPEG loader

// null when this build has none.
std::unique_ptr<Loader> make_nvjpeg_loader(const Dataset& data, const torch::Tensor& order, int64_t batch,
                                           bool drop_last, const LoaderOptions& options);

}  // namespace vitlab
