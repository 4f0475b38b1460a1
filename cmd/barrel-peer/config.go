package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// fileConfig is the daemon's configuration as written in the YAML file
// (see configs/barrel.yaml). Precedence: flags > file > defaults.
type fileConfig struct {
	DataDir    string     `koanf:"data_dir"`
	HTTP       httpConfig `koanf:"http"`
	Durability string     `koanf:"durability"`
	WriteQueue int        `koanf:"write_queue"`
	LogLevel   string     `koanf:"log_level"`
}

// httpConfig is the http section of the configuration file.
type httpConfig struct {
	Addr         string `koanf:"addr"`
	Token        string `koanf:"token"`
	MaxBodyBytes int64  `koanf:"max_body_bytes"`
}

// defaultConfig returns the defaults: data in $XDG_DATA_HOME/barrel or
// ~/.local/share/barrel, HTTP on 127.0.0.1:7080, sync durability.
func defaultConfig() fileConfig {
	return fileConfig{
		DataDir:    defaultDataDir(),
		HTTP:       httpConfig{Addr: "127.0.0.1:7080"},
		Durability: "sync",
		LogLevel:   "info",
	}
}

func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "barrel")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "" // validate reports the missing data dir
	}
	return filepath.Join(home, ".local", "share", "barrel")
}

// loadConfig applies the file at path (if path is not empty) over the
// defaults, then every flag the user set in flags. Unknown keys in the file
// are errors, so a typo does not silently fall back to a default.
func loadConfig(path string, flags *pflag.FlagSet) (fileConfig, error) {
	cfg := defaultConfig()
	if path != "" {
		k := koanf.New(".")
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return cfg, fmt.Errorf("read config %s: %w", path, err)
		}
		err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
			Tag: "koanf",
			DecoderConfig: &mapstructure.DecoderConfig{
				ErrorUnused:      true,
				WeaklyTypedInput: false,
			},
		})
		if err != nil {
			return cfg, fmt.Errorf("decode config %s: %w", path, err)
		}
	}
	if err := applyFlags(&cfg, flags); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// applyFlags copies the flags the user set onto cfg.
func applyFlags(cfg *fileConfig, flags *pflag.FlagSet) error {
	var err error
	flags.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "data":
			cfg.DataDir = f.Value.String()
		case "http":
			cfg.HTTP.Addr = f.Value.String()
		case "http-token":
			cfg.HTTP.Token = f.Value.String()
		case "durability":
			cfg.Durability = f.Value.String()
		case "log-level":
			cfg.LogLevel = f.Value.String()
		case "write-queue":
			cfg.WriteQueue, err = flags.GetInt("write-queue")
		case "max-body-bytes":
			cfg.HTTP.MaxBodyBytes, err = flags.GetInt64("max-body-bytes")
		}
	})
	return err
}

// validate reports every contradiction in cfg at once.
func (c fileConfig) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty and no home directory is known: set --data"))
	}
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr is empty"))
	}
	switch c.Durability {
	case "sync", "batch":
	default:
		errs = append(errs, fmt.Errorf("durability %q: want sync or batch", c.Durability))
	}
	if c.WriteQueue < 0 {
		errs = append(errs, fmt.Errorf("write_queue %d: want >= 0", c.WriteQueue))
	}
	if c.HTTP.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("http.max_body_bytes %d: want >= 0", c.HTTP.MaxBodyBytes))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// level parses LogLevel (debug, info, warn, error).
func (c fileConfig) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}
