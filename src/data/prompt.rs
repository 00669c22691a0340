//! The one prompt layer: a question → chat messages → prompt text through the model's chat
//! template. `srlm train`, `sft`, `distill` and `eval` all ask here, so one question in one
//! format is one prompt, byte for byte, whichever command renders it.
//!
//! `plain` is the question alone; `r1` puts the `<think>`/`<answer>` instruction (what the format
//! reward trains for; DeepSeek-R1-Zero's wording, as open-r1 and TRL's GRPO recipes use it) in a
//! system message; `boxed` puts the instruction of the published math evaluations (Qwen2.5-Math)
//! in a system message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatError, ChatTemplate, Message};

pub const R1_SYSTEM_PROMPT: &str = "A conversation between User and Assistant. The user asks a question, and the \
Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user \
with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, \
respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>.";

pub const BOXED_INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    Plain,
    R1,
    Boxed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown prompt format '{0}' (known: plain, r1, boxed)")]
pub struct UnknownPromptFormat(pub String);

impl PromptFormat {
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::Plain => "plain",
            PromptFormat::R1 => "r1",
            PromptFormat::Boxed => "boxed",
        }
    }

    /// The system message this format puts before the question.
    pub fn system_prompt(self) -> Option<&'static str> {
        match self {
            PromptFormat::Plain => None,
            PromptFormat::R1 => Some(R1_SYSTEM_PROMPT),
            PromptFormat::Boxed => Some(BOXED_INSTRUCTION),
        }
    }

    /// The conversation asking `question`.
    pub fn messages(self, question: &str) -> Vec<Message> {
        question_messages(question, self.system_prompt())
    }

    /// Whether `completion` keeps the layout this format asks for, judged by the reward that
    /// trains it: `r1` the think/answer tags (the `format` reward's lenient check), `boxed` a
    /// closed, non-blank `\boxed{…}` (`format_boxed`); `plain` asks for none.
    pub fn followed_by(self, completion: &str) -> Option<bool> {
        match self {
            PromptFormat::Plain => None,
            PromptFormat::R1 => Some(crate::reward::format_score(completion, crate::reward::FormatMode::Lenient) == 1.0),
            PromptFormat::Boxed => Some(crate::reward::boxed_format::boxed_format_score(completion) == 1.0),
        }
    }

    /// A reply in this format's layout: `reasoning`, then `answer` where the format asks for it
    /// (r1: inside the think and answer tags; boxed: in a closing `\boxed{}`; plain: an "answer
    /// is" sentence, which every benchmark's extraction reads).
    pub fn lay_out(self, reasoning: &str, answer: &str) -> String {
        let reasoning = reasoning.trim();
        match self {
            PromptFormat::R1 => format!("<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"),
            PromptFormat::Boxed => format!("{reasoning}\n\nThe final answer is $\\boxed{{{answer}}}$."),
            PromptFormat::Plain => format!("{reasoning}\n\nThe answer is {answer}."),
        }
    }

    /// `reply` without this format's layout marks (r1's tags, and a tag cut off at the end by the
    /// token limit), so it can be laid out again with [`PromptFormat::lay_out`].
    pub fn reasoning_of(self, reply: &str) -> String {
        match self {
            PromptFormat::R1 => {
                let mut text = reply.to_string();
                for tag in ["<think>", "</think>", "<answer>", "</answer>"] {
                    text = text.replace(tag, " ");
                }
                let cut_tag = text.rfind('<').filter(|&i| text[i..].len() <= "</answer".len() && !text[i..].contains('>'));
                if let Some(i) = cut_tag {
                    text.truncate(i);
                }
                text.split('\n').map(str::trim).collect::<Vec<_>>().join("\n").trim().to_string()
            }
            PromptFormat::Boxed | PromptFormat::Plain => reply.trim().to_string(),
        }
    }

    /// The prompt text, ending where the assistant's reply begins.
    pub fn render(self, template: &ChatTemplate, question: &str) -> Result<String, ChatError> {
        template.render(&self.messages(question), true)
    }
}

/// The prompt turns for a question: a system message (when given), then the question. Formats
/// call this with their own system prompt; `srlm sft`'s `system_prompt` and `srlm distill
/// --system` with a custom one.
pub fn question_messages(question: &str, system: Option<&str>) -> Vec<Message> {
    let mut messages: Vec<Message> = system.map(|s| Message::new("system", s)).into_iter().collect();
    messages.push(Message::new("user", question));
    messages
}

impl fmt::Display for PromptFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PromptFormat {
    type Err = UnknownPromptFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plain" => Ok(PromptFormat::Plain),
            "r1" => Ok(PromptFormat::R1),
            "boxed" => Ok(PromptFormat::Boxed),
            _ => Err(UnknownPromptFormat(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_judges_its_own_layout() {
        let tagged = "<think>2 + 2 = 4</think>\n<answer>4</answer>";
        let boxed = "2 + 2 = 4, so \\boxed{4}.";
        assert_eq!(PromptFormat::R1.followed_by(tagged), Some(true));
        assert_eq!(PromptFormat::R1.followed_by(boxed), Some(false));
        assert_eq!(PromptFormat::R1.followed_by("<think>cut off"), Some(false));
        assert_eq!(PromptFormat::Boxed.followed_by(boxed), Some(true));
        assert_eq!(PromptFormat::Boxed.followed_by(tagged), Some(false));
        // A blank box is no answer: evaluation and the `format_boxed` reward agree on it.
        assert_eq!(PromptFormat::Boxed.followed_by("so \\boxed{ }"), Some(false));
        assert_eq!(PromptFormat::Plain.followed_by(tagged), None);
    }

    #[test]
    fn laid_out_replies_keep_the_layout_and_grade_as_their_answer() {
        use crate::reward::{grade, Benchmark, Gold};
        let gold = Gold::number(72.0).unwrap();
        for format in [PromptFormat::R1, PromptFormat::Boxed, PromptFormat::Plain] {
            let reply = format.lay_out("48 / 2 = 24 in May; 48 + 24 = 72 in all.", "72");
            assert_ne!(format.followed_by(&reply), Some(false), "{format}: {reply}");
            assert!(grade(Benchmark::Gsm8k, &reply, &gold).correct, "{format}: {reply}");
            assert!(grade(Benchmark::Math500, &reply, &gold).correct, "{format}: {reply}");
        }
        assert_eq!(PromptFormat::R1.lay_out(" So 72. ", "72"), "<think>\nSo 72.\n</think>\n<answer>\n72\n</answer>");
    }

    #[test]
    fn r1_reasoning_drops_the_tags_and_a_tag_cut_off_at_the_end() {
        let broken = "<think> Half of 48 is 24. </answer>\n<answer> 48 + 24 = 72 </";
        assert_eq!(PromptFormat::R1.reasoning_of(broken), "Half of 48 is 24.\n48 + 24 = 72");
        assert_eq!(PromptFormat::R1.reasoning_of("<think>a < b, so 3</think><answer>3</answer>"), "a < b, so 3  3");
        assert_eq!(PromptFormat::Boxed.reasoning_of(" x = 2 "), "x = 2");
        let relaid = PromptFormat::R1.lay_out(&PromptFormat::R1.reasoning_of(broken), "72");
        assert_eq!(PromptFormat::R1.followed_by(&relaid), Some(true));
    }

    /// The ChatML template of Qwen2.5 (shortened to the part these messages use).
    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn formats_render_through_the_chat_template() {
        let t = ChatTemplate::new(CHATML, None, None).unwrap();
        let boxed = PromptFormat::Boxed.render(&t, "What is 2+2?").unwrap();
        assert_eq!(
            boxed,
            "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n\
             <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        let r1 = PromptFormat::R1.render(&t, "Q").unwrap();
        assert!(r1.starts_with("<|im_start|>system\nA conversation between User and Assistant."));
        assert!(r1.contains("<think> </think>") && r1.contains("<answer> </answer>"));
        assert!(r1.ends_with("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"));
        let plain = PromptFormat::Plain.render(&t, "Q").unwrap();
        assert_eq!(plain, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn names_parse() {
        assert_eq!("r1".parse(), Ok(PromptFormat::R1));
        assert_eq!("Boxed".parse(), Ok(PromptFormat::Boxed));
        assert_eq!("plain".parse(), Ok(PromptFormat::Plain));
        assert_eq!("chatml".parse::<PromptFormat>(), Err(UnknownPromptFormat("chatml".into())));
        assert_eq!(serde_json::to_string(&PromptFormat::R1).unwrap(), "\"r1\"");
    }
}
