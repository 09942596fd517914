"""Every use case behind the CLI: checkpoint → converted SNN → integer network → file → runs → reports.

Each function is what one command does, callable from Python. The modules follow the data: ``training``
(train, score the converted SNN), ``models`` (checkpoints and user models → float SNN → integers),
``network_files`` (write netx or NIR, read netx back), ``running`` (run, verify, the accuracy chain),
``stock`` (stock netx files through stock lava-dl netx) and ``reporting`` (chip reports, conversion
analysis). This package is the only importer of the file exporters (``slipsnn.exporters``); the layers
below it never touch files of the network.

    >>> net, path = export_checkpoint("runs/d/model.pt", "runs/d/model.net", timesteps=4)   # doctest: +SKIP
    >>> result = run_file("runs/d/model.net", backend="loihi_sim", limit=100)               # doctest: +SKIP
"""

from .models import (convert_checkpoint, convert_model, dataset_of, load_converted, load_model, lower_model,
                     quant_config, save_model)
from .network_files import export_checkpoint, export_nir, is_stock_file, load_network
from .reporting import analyze_conversion, report, save_report
from .running import (FileRun, Verification, accuracy_chain, network_and_test_data, run, run_exported, run_file,
                      verify_file)
from .stock import BINARY_THRESHOLD, StockReport, StockRun, report_stock_file, run_stock_file
from .training import snn_accuracies, train_and_evaluate

__all__ = [
    "convert_checkpoint", "convert_model", "dataset_of", "load_converted", "load_model", "lower_model",
    "quant_config", "save_model",
    "export_checkpoint", "export_nir", "is_stock_file", "load_network",
    "analyze_conversion", "report", "save_report",
    "FileRun", "Verification", "accuracy_chain", "network_and_test_data", "run", "run_exported", "run_file",
    "verify_file",
    "BINARY_THRESHOLD", "StockReport", "StockRun", "report_stock_file", "run_stock_file",
    "snn_accuracies", "train_and_evaluate",
]
