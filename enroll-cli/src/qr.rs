//! Drawing the key URI as a QR code: in the terminal with Unicode half
//! blocks, or into a PNG or SVG file.

use qrcode::{Color, EcLevel, QrCode};

/// Modules of quiet zone around the code (the QR spec asks for 4).
const QUIET: usize = 4;

/// The code's modules, `true` = dark, with the quiet zone included.
pub struct Matrix {
    pub width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    pub fn encode(text: &str) -> Result<Self, String> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| format!("the key URI does not fit in a QR code: {e}"))?;
        let inner = code.width();
        let colors = code.to_colors();
        let width = inner + 2 * QUIET;
        let mut dark = vec![false; width * width];
        for y in 0..inner {
            for x in 0..inner {
                dark[(y + QUIET) * width + x + QUIET] = colors[y * inner + x] == Color::Dark;
            }
        }
        Ok(Self { width, dark })
    }

    fn at(&self, x: usize, y: usize) -> bool {
        y < self.width && self.dark[y * self.width + x]
    }

    /// Two module rows per text line: ' ', '▀', '▄', '█' draw dark modules
    /// in the foreground colour. With `ansi`, each line is wrapped in
    /// black-on-white so the code reads the same on light and dark terminals.
    pub fn to_terminal(&self, ansi: bool) -> String {
        let mut out = String::new();
        for y in (0..self.width).step_by(2) {
            if ansi {
                out.push_str("\x1b[30;47m");
            }
            for x in 0..self.width {
                out.push(match (self.at(x, y), self.at(x, y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            if ansi {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
        }
        out
    }

    /// An 8-bit greyscale PNG, `scale` pixels per module.
    pub fn to_png(&self, scale: usize) -> Result<Vec<u8>, String> {
        let side = self.width * scale;
        let mut pixels = vec![255u8; side * side];
        for y in 0..side {
            for x in 0..side {
                if self.at(x / scale, y / scale) {
                    pixels[y * side + x] = 0;
                }
            }
        }
        let mut out = Vec::new();
        {
            let side32 = u32::try_from(side).map_err(|_| "QR code too large")?;
            let mut enc = png::Encoder::new(&mut out, side32, side32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(|e| format!("PNG: {e}"))?;
            writer
                .write_image_data(&pixels)
                .map_err(|e| format!("PNG: {e}"))?;
        }
        Ok(out)
    }

    /// An SVG document with one path of unit squares.
    pub fn to_svg(&self, scale: usize) -> String {
        let side = self.width * scale;
        let mut path = String::new();
        for y in 0..self.width {
            for x in 0..self.width {
                if self.at(x, y) {
                    path.push_str(&format!("M{x} {y}h1v1h-1z"));
                }
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{side}\" height=\"{side}\" viewBox=\"0 0 {w} {w}\" shape-rendering=\"crispEdges\">\n<rect width=\"{w}\" height=\"{w}\" fill=\"#fff\"/>\n<path fill=\"#000\" d=\"{path}\"/>\n</svg>\n",
            w = self.width
        )
    }
}

/// Where the QR code goes (`--qr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrTarget {
    Terminal,
    Png(std::path::PathBuf),
    Svg(std::path::PathBuf),
    None,
}

pub fn parse_target(s: &str) -> Result<QrTarget, String> {
    match s.split_once('=') {
        Some(("png", p)) if !p.is_empty() => Ok(QrTarget::Png(p.into())),
        Some(("svg", p)) if !p.is_empty() => Ok(QrTarget::Svg(p.into())),
        None if s == "none" => Ok(QrTarget::None),
        None if s == "terminal" => Ok(QrTarget::Terminal),
        _ => Err(format!(
            "--qr {s:?}: use terminal, none, png=PATH or svg=PATH"
        )),
    }
}

/// Writes an image holding the secret: created new (never through a link or
/// over another file), mode 0600.
pub fn write_private(
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<(), otpgate_os::fs::CreateError> {
    otpgate_os::fs::create_private_file(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_rendering_round_trips_to_modules() {
        let m = Matrix::encode("otpauth://totp/x:y?secret=AAAA").unwrap();
        let text = m.to_terminal(false);
        let rows: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        assert_eq!(rows.len(), m.width.div_ceil(2));
        for y in 0..m.width {
            for (x, &c) in rows[y / 2].iter().enumerate().take(m.width) {
                let dark = if y % 2 == 0 {
                    c == '█' || c == '▀'
                } else {
                    c == '█' || c == '▄'
                };
                assert_eq!(dark, m.at(x, y), "module {x},{y}");
            }
        }
    }

    #[test]
    fn qr_targets_parse() {
        assert_eq!(parse_target("none").unwrap(), QrTarget::None);
        assert_eq!(
            parse_target("png=/tmp/a.png").unwrap(),
            QrTarget::Png("/tmp/a.png".into())
        );
        assert!(parse_target("jpg=/tmp/a").is_err());
        assert!(parse_target("png=").is_err());
    }
}
