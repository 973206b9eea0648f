#pragma once
// Per-image answers (vit_eval --predictions), as timm's inference.py and transformers' pipelines
// give them: each image's name, its label where the data has one, and its top classes with
// their probabilities and names.
#include <string>
#include <vector>

#include "vitlab/train/evaluate.h"

namespace vitlab {

// Writes `r`'s predictions (evaluate with predictions > 0) to `path`, atomically: JSON when it
// ends in .json ([{"image", "label", "label_name", "top": [{"class", "name", "prob"}, ...]}, ...]),
// else CSV (image,label,label_name,class_1,name_1,prob_1,...; RFC 4180 quoting).
// `images` names the rows (file paths, or "#index" for in-memory data); `class_names` may be
// empty (names left out); a label of -1 (unlabelled images) is written empty (JSON null).
void write_predictions(const std::string& path, const EvalResult& r, const std::vector<std::string>& images,
                       const std::vector<std::string>& class_names);

}  // namespace vitlab
